import { afterEach, describe, expect, it, vi } from "vitest";
import { Scheduler } from "../../src/dispatcher/scheduler.js";
import { waitFor } from "../helpers/wait.js";
import type { DecisionKit } from "./decision-kit.js";
import { startDecisionKit } from "./decision-kit.js";

/**
 * The scheduler pass by pass: queue deadlines, launch slots, caps' reasons, retries after a
 * backoff, and passes that never overlap.
 */
let k: DecisionKit | undefined;
let s: Scheduler | undefined;
afterEach(async () => {
  await s?.drain(0);
  await k?.close();
  s = undefined;
  k = undefined;
});

async function start(namespace: Record<string, unknown> = {}, dispatcher: Record<string, unknown> = {}) {
  k = await startDecisionKit({ yaml: { namespace: { max_parallel: 2, max_runners: 10, ...namespace }, dispatcher } });
  s = new Scheduler(k.ctx);
  return { k, s };
}

const logLine = (kit: DecisionKit, msg: string) =>
  JSON.parse(
    kit
      .logs()
      .split("\n")
      .find((l) => l.includes(`"msg":"${msg}"`)) ?? "null",
  ) as Record<string, unknown>;

/** Counts the passes `kick` starts. */
function countPasses(sched: Scheduler): { count: () => number; idle: () => boolean } {
  let n = 0;
  const pass = sched.pass.bind(sched);
  sched.pass = async () => {
    n++;
    return pass();
  };
  return { count: () => n, idle: () => !sched.passing };
}

describe("Scheduler.pass", () => {
  it("fails a pending runner at its queue deadline, saying what it waited for", async () => {
    const { k, s } = await start();
    await k.runner("nscloud-late", "pending", { createdAtMs: -3_600_000 });
    await k.runner("nscloud-ok", "pending", { createdAtMs: -3_599_999 });
    await s.pass();
    expect(await k.store.getRunner("nscloud-late")).toMatchObject({
      state: "failed",
      reason: "not launched within dispatcher.queue_timeout; last reason: accepted, waiting for a launch slot",
      finishedAt: k.ctx.now().toISOString(),
    });
    expect((await k.store.getRunner("nscloud-ok"))!.state).toBe("launching");
    await waitFor(() => k.launchers.linux.inProgress.length === 1, { what: "the launch" });
    expect(k.launchers.linux.launches.map((l) => l.runnerName)).toEqual(["nscloud-ok"]);
  });

  it("starts at most namespace.max_parallel launches; the others wait for a slot and say so", async () => {
    const { k, s } = await start();
    for (const n of ["a", "b", "c"]) await k.runner(`nscloud-${n}`, "pending");
    await s.pass();
    expect((await k.store.getRunner("nscloud-a"))!.state).toBe("launching");
    expect((await k.store.getRunner("nscloud-a"))!.history.at(-1)!.reason).toBe("launch slot acquired (attempt 1/3)");
    expect((await k.store.getRunner("nscloud-b"))!.state).toBe("launching");
    expect(await k.store.getRunner("nscloud-c")).toMatchObject({
      state: "pending",
      reason: "waiting for a launch slot: namespace.max_parallel=2 launches in progress",
    });
    expect(s.launchesInFlight).toBe(2);
    expect(s.isLaunching("nscloud-a")).toBe(true);
    expect(s.isLaunching("nscloud-c")).toBe(false);
    await waitFor(() => k.launchers.linux.inProgress.length === 2, { what: "two launches" });
    // Still two in flight: another pass starts nothing.
    await s.pass();
    expect(k.launchers.linux.launches).toHaveLength(2);
    // One instance is up: its slot is free again at once, though the runner keeps running.
    k.launchers.linux.finishLaunch("nscloud-a");
    await waitFor(async () => (await k.store.getRunner("nscloud-c"))?.state === "launching", { what: "c launching" });
    expect((await k.store.getRunner("nscloud-a"))!.state).toBe("running");
    expect(s.isLaunching("nscloud-a")).toBe(false);
  });

  it("a pass with nothing pending reads the store once", async () => {
    const { k, s } = await start();
    await k.runner("nscloud-live", "running", { instanceId: "i", expiresAt: "2027-01-01T00:00:00.000Z" });
    const list = k.store.listRunners.bind(k.store);
    const queries: unknown[] = [];
    k.store.listRunners = async (f) => {
      queries.push(f);
      return list(f);
    };
    await s.pass();
    expect(queries).toEqual([{ states: ["pending"] }]);
  });

  it("writes a waiting reason only when it changed", async () => {
    const { k, s } = await start({ max_runners: 1 });
    await k.runner("nscloud-live", "running", { instanceId: "i", expiresAt: "2027-01-01T00:00:00.000Z" });
    await k.runner("nscloud-w", "pending");
    await s.pass();
    const first = (await k.store.getRunner("nscloud-w"))!;
    expect(first.reason).toBe("waiting for capacity: max_runners=1 reached");
    k.advance(1000);
    await s.pass();
    expect((await k.store.getRunner("nscloud-w"))!.updatedAt).toBe(first.updatedAt);
  });

  it("counts only live runners against max_runners: finished and pending ones do not", async () => {
    const { k, s } = await start({ max_runners: 2 });
    await k.runner("nscloud-d1", "done", {});
    await k.runner("nscloud-d2", "failed", {});
    await k.runner("nscloud-p", "pending");
    await s.pass();
    expect((await k.store.getRunner("nscloud-p"))!.state).toBe("launching");
  });

  it("never tells a runner that gets a slot that it waits for one", async () => {
    const { k, s } = await start({ max_parallel: 1 });
    await k.runner("nscloud-a", "pending");
    await k.runner("nscloud-b", "pending");
    const reasons: [string, string][] = [];
    k.ctx.records.onChange((r) => reasons.push([r.name, r.reason]));
    await s.pass();
    expect(reasons.filter(([n, why]) => n === "nscloud-a" && why.startsWith("waiting"))).toEqual([]);
    expect(reasons).toContainEqual(["nscloud-b", "waiting for a launch slot: namespace.max_parallel=1 launches in progress"]);
  });

  it("counts the caps over live runners, so a finishing runner still holds its place", async () => {
    const { k, s } = await start({}, { caps: [{ labels: ["namespace-profile-linux-medium"], max: 1 }] });
    await k.runner("nscloud-f", "finishing", { instanceId: "i", reason: "finishing: job done" });
    await k.runner("nscloud-w", "pending");
    await s.pass();
    expect(await k.store.getRunner("nscloud-w")).toMatchObject({
      state: "pending",
      reason: "waiting for capacity: cap labels [namespace-profile-linux-medium] max=1 reached",
    });
  });

  it("retries a launch that failed for capacity only after its backoff", async () => {
    const { k, s } = await start();
    await k.runner("nscloud-r", "pending");
    await s.pass();
    await waitFor(() => k.launchers.linux.inProgress.length === 1, { what: "the launch" });
    k.launchers.linux.failLaunch("capacity", "no capacity in ord4");
    await waitFor(async () => (await k.store.getRunner("nscloud-r"))?.state === "pending", { what: "back to pending" });
    expect((await k.store.getRunner("nscloud-r"))!.reason).toBe("launch attempt 1/3 failed: no capacity in ord4; retrying in 5s");
    await waitFor(() => !s.isLaunching("nscloud-r"), { what: "launch settled" });
    k.advance(4_999);
    await s.pass();
    expect(k.launchers.linux.launches).toHaveLength(1);
    k.advance(1);
    await s.pass();
    // This very pass claimed it (before the backoff's own 5-s timer could kick another one).
    expect(s.isLaunching("nscloud-r")).toBe(true);
    await waitFor(() => k.launchers.linux.launches.length === 2, { what: "the second attempt" });
    expect((await k.store.getRunner("nscloud-r"))!.history.at(-1)!.reason).toBe("launch slot acquired (attempt 2/3)");
  });

  it.each([
    ["when the clock agrees", 5_000],
    // Node's timers may fire a millisecond before Date.now() reaches their due time (measured: 12 of 500 7-ms timers).
    ["when the timer fires a moment before the clock says the backoff is over", 4_999],
  ])("kicks a pass that launches when a retry's backoff is over, %s", async (_when, elapsed) => {
    const { k, s } = await start();
    await k.runner("nscloud-r", "pending");
    await s.pass();
    await waitFor(() => k.launchers.linux.inProgress.length === 1, { what: "the launch" });
    const timers = vi.spyOn(globalThis, "setTimeout");
    try {
      k.launchers.linux.failLaunch("capacity", "no capacity in ord4");
      await waitFor(() => !s.isLaunching("nscloud-r"), { what: "launch settled" });
      const i = timers.mock.calls.findIndex(([, ms]) => ms === 5_000);
      expect(i).toBeGreaterThanOrEqual(0);
      const backoff = timers.mock.calls[i];
      // Fire it now, by hand, and never by the clock.
      clearTimeout(timers.mock.results[i]!.value as NodeJS.Timeout);
      const passes = countPasses(s);
      await waitFor(passes.idle, { what: "idle" });
      const before = passes.count();
      k.advance(elapsed);
      (backoff![0] as () => void)();
      await waitFor(() => k.launchers.linux.launches.length === 2, { what: "the second attempt" });
      expect(passes.count()).toBe(before + 1);
    } finally {
      timers.mockRestore();
    }
  });

  it("logs a launch that crashed (its record is settled by the supervisor)", async () => {
    const { k, s } = await start();
    await k.runner("nscloud-c", "pending");
    await s.pass();
    await waitFor(() => k.launchers.linux.inProgress.length === 1, { what: "the launch" });
    k.store.getRunner = async () => {
      throw new Error("disk I/O error");
    };
    k.launchers.linux.failLaunch("invalid", "bad machine type");
    await waitFor(() => !s.isLaunching("nscloud-c"), { what: "launch over" });
    expect(logLine(k, "launch crashed unexpectedly; the supervisor settles the runner on its next tick")).toMatchObject({
      runner: "nscloud-c",
      err: "disk I/O error",
    });
  });
});

describe("Scheduler.kick", () => {
  it("never overlaps passes: kicks during a pass cause exactly one more", async () => {
    const { k, s } = await start();
    await k.runner("nscloud-a", "pending");
    const passes = countPasses(s);
    s.kick();
    s.kick();
    s.kick();
    await waitFor(() => passes.count() === 2 && passes.idle(), { what: "two passes, then idle" });
    expect(passes.count()).toBe(2);
    await waitFor(() => k.launchers.linux.launches.length === 1, { what: "one launch" });
    expect((await k.store.getRunner("nscloud-a"))!.history.filter((h) => h.to === "launching")).toHaveLength(1);
  });

  it("runs a pass when a runner ends (capacity freed), and none once stopped", async () => {
    const { k, s } = await start();
    await k.runner("nscloud-a", "running", { instanceId: "i", expiresAt: "2027-01-01T00:00:00.000Z" });
    const passes = countPasses(s);
    await k.ctx.records.transition({ name: "nscloud-a" }, ["running"], "finishing", "finishing: x");
    expect(passes.count()).toBe(0);
    await k.ctx.records.transition({ name: "nscloud-a" }, ["finishing"], "done", "x");
    expect(passes.count()).toBe(1);
    await waitFor(passes.idle, { what: "idle" });
    await k.runner("nscloud-b", "pending");
    await k.ctx.records.transition({ name: "nscloud-b" }, ["pending"], "failed", "cancelled");
    expect(passes.count()).toBe(2);
    await waitFor(passes.idle, { what: "idle" });
    expect(await s.drain(1000)).toBe(true);
    s.kick();
    expect(passes.count()).toBe(2);
  });

  it("logs a failed pass and keeps working", async () => {
    const { k, s } = await start();
    const passes = countPasses(s);
    const list = k.store.listRunners.bind(k.store);
    let fail = true;
    k.store.listRunners = async (f) => {
      if (fail) {
        fail = false;
        throw new Error("database is locked");
      }
      return list(f);
    };
    s.kick();
    await waitFor(() => passes.count() === 1 && passes.idle(), { what: "the failed pass" });
    expect(logLine(k, "scheduling pass failed; retrying on the next tick")).toMatchObject({ err: "database is locked" });
    await k.runner("nscloud-a", "pending");
    s.kick();
    await waitFor(() => k.launchers.linux.launches.length === 1, { what: "a launch" });
  });
});

describe("Scheduler.drain", () => {
  it("waits for launches in progress, up to its timeout", async () => {
    const { k, s } = await start();
    expect(await new Scheduler(k.ctx).drain(0)).toBe(true);
    await k.runner("nscloud-a", "pending");
    await s.pass();
    await waitFor(() => k.launchers.linux.inProgress.length === 1, { what: "the launch" });
    expect(await s.drain(20)).toBe(false);
    const drained = s.drain(10_000);
    k.launchers.linux.finishLaunch();
    expect(await drained).toBe(true);
    // Stopped: nothing more is admitted.
    await k.runner("nscloud-b", "pending");
    s.kick();
    await s.pass();
    expect((await k.store.getRunner("nscloud-b"))!.state).toBe("pending");
    expect(k.launchers.linux.launches).toHaveLength(1);
  });
});
