import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { startStack } from "./harness.js";
import type { Stack } from "./harness.js";

let stack: Stack | undefined;
const own = closedAfterEach();

/** A clock the test moves; the daemon plans with it (timers still run in real time). */
function fakeClock(iso: string) {
  let t = Date.parse(iso);
  return { now: () => new Date(t), set: (s: string) => (t = Date.parse(s)) };
}

const office = {
  name: "linux",
  labels: ["linux:host", "docker"],
  min_idle: 0,
  timezone: "Europe/Berlin",
  min_idle_schedule: [{ cron: "0 8 * * 1-5", until: "0 18 * * 1-5", min_idle: 3 }],
};

describe("scheduled warm pools with a fake clock", () => {
  it("fills at 08:00 Berlin time on both sides of the spring DST change, and not a minute earlier", async () => {
    // Friday 27 March 2026, 07:59 CET (UTC+1).
    const clock = fakeClock("2026-03-27T06:59:00Z");
    stack = own(
      await startStack({
        forgejo: { version: "15.0.3" },
        instance: { targets: [office] },
        deps: { now: clock.now, tuning: { pollIntervalMs: 100 } },
      }),
    );
    const { dispatcher } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    const passesAt = async (iso: string) => {
      clock.set(iso);
      const p = r.passCount;
      await waitFor(() => r.passCount >= p + 2, { what: `two passes at ${iso}` });
    };

    await passesAt("2026-03-27T06:59:00Z");
    expect(dispatcher.dispatches).toHaveLength(0);
    expect((await stack.status()).instances[0]!.targets[0]).toMatchObject({ min_idle: 0, min_idle_period: null });

    await passesAt("2026-03-27T07:00:00Z");
    expect(dispatcher.dispatches.map((d) => d.key)).toEqual(
      [0, 1, 2].map((i) => expect.stringMatching(new RegExp(`^fj:warm:linux:[0-9a-f]{6}-${i}$`))),
    );
    expect(dispatcher.dispatches.every((d) => d.body.job === undefined)).toBe(true);
    expect((await stack.status()).instances[0]!.targets[0]).toMatchObject({ min_idle: 3, min_idle_period: 0, in_flight: 3 });

    // The pool is full: no more requests while the runners live.
    await passesAt("2026-03-27T12:00:00Z");
    expect(dispatcher.dispatches).toHaveLength(3);

    // Over the weekend the runners reach their TTL; the pool stays empty.
    for (const x of dispatcher.runners) dispatcher.setState(x.name, "done", "ttl reached");
    await passesAt("2026-03-29T09:00:00Z");
    expect(dispatcher.dispatches).toHaveLength(3);

    // Monday 30 March, CEST (UTC+2): 07:59 local is 05:59Z — still closed.
    await passesAt("2026-03-30T05:59:00Z");
    expect(dispatcher.dispatches).toHaveLength(3);
    await passesAt("2026-03-30T06:00:00Z");
    expect(dispatcher.dispatches).toHaveLength(6);
  });

  it("refills after the autumn change at the new offset, and never beyond max_runners", async () => {
    // Monday 26 October 2026, 07:30 CET (UTC+1).
    const clock = fakeClock("2026-10-26T06:30:00Z");
    stack = own(
      await startStack({
        forgejo: { version: "15.0.3" },
        instance: { targets: [{ ...office, max_runners: 4 }] },
        deps: { now: clock.now, tuning: { pollIntervalMs: 100 } },
      }),
    );
    const { forgejo, dispatcher } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 2, { what: "passes before opening" });
    // Two jobs are running on runners of this target already.
    for (let i = 0; i < 2; i++) forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    await waitFor(() => dispatcher.dispatches.length === 2, { what: "job runners" });
    clock.set("2026-10-26T07:00:00Z");
    await waitFor(() => dispatcher.dispatches.length === 4, { what: "warm runners up to the cap" });
    const p = r.passCount;
    await waitFor(() => r.passCount >= p + 2, { what: "more passes" });
    expect(dispatcher.dispatches).toHaveLength(4);
    const t = (await stack.status()).instances[0]!.targets[0]!;
    expect(t).toMatchObject({ min_idle: 3, in_flight: 4, max_runners: 4 });
    expect(t.note).toBe("1 warm runner(s) short: at cap: target linux has 4 runner(s) in flight, max_runners 4");
  });
});

describe("max_runners with jobs", () => {
  it("serves the oldest jobs up to the cap, says why the others wait, and continues as runners end", async () => {
    stack = own(
      await startStack({
        forgejo: { version: "15.0.3" },
        instance: { targets: [{ name: "linux", labels: ["linux"], max_runners: 2 }] },
        deps: { tuning: { pollIntervalMs: 100 } },
      }),
    );
    const { forgejo, dispatcher } = stack;
    const jobs = [1, 2, 3].map(() => forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] }));
    await waitFor(() => dispatcher.dispatches.length === 2, { what: "two runners" });
    expect(dispatcher.dispatches.map((d) => (d.body.job as { id: number }).id)).toEqual([jobs[0]!.id, jobs[1]!.id]);
    dispatcher.setState(dispatcher.runners[0]!.name, "launching", "creating the instance");
    const s = await waitFor(async () => {
      const x = (await stack!.status()).instances[0]!;
      return x.waiting_jobs.find((j) => j.id === jobs[0]!.id)?.reason.includes("launching") ? x : undefined;
    });
    expect(s.waiting_jobs.find((j) => j.id === jobs[0]!.id)!.reason).toMatch(/^runner fake-runner-1-0 launching since \d+s$/);
    expect(s.waiting_jobs.find((j) => j.id === jobs[2]!.id)).toMatchObject({
      state: "at_cap",
      reason: "at cap: target linux has 2 runner(s) in flight, max_runners 2",
    });
    dispatcher.setState(dispatcher.runners[0]!.name, "failed", "gave up");
    // One slot is free again. The oldest job (whose runner failed) gets it, under the next
    // generation of its key; job 3 keeps waiting at the cap.
    await waitFor(() => dispatcher.dispatches.length === 3, { what: "third runner" });
    expect(dispatcher.dispatches[2]!.key).toBe(`fj:job:${jobs[0]!.id}:${jobs[0]!.handle}:r1`);
    const after = await waitFor(async () => {
      const x = (await stack!.status()).instances[0]!;
      return x.waiting_jobs.find((j) => j.id === jobs[0]!.id)?.state === "in_flight" ? x : undefined;
    });
    expect(after.waiting_jobs.find((j) => j.id === jobs[2]!.id)!.state).toBe("at_cap");
    const p = stack.autoscaler.reconcilers[0]!.passCount;
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= p + 2, { what: "more passes" });
    expect(dispatcher.runners.filter((x) => x.state !== "failed" && x.state !== "done")).toHaveLength(2);
  });
});
