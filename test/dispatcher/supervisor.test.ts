import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Launcher } from "../../src/namespace/launcher.js";
import type { RunnerState } from "../../src/store/types.js";
import type { DecisionKit } from "./decision-kit.js";
import { startDecisionKit } from "./decision-kit.js";

/**
 * The supervisor's judgement, one tick at a time: which runners end and how, which instances are
 * orphans, and that nothing is decided on one look.
 */
let k: DecisionKit;
beforeEach(async () => {
  k = await startDecisionKit();
});
afterEach(async () => {
  await k.close();
});

const state = async (name: string) => (await k.store.getRunner(name))?.state;
/** The first JSON log line whose message starts with `msg`. */
const logLine = (kit: DecisionKit, msg: string) =>
  JSON.parse(
    kit
      .logs()
      .split("\n")
      .find((l) => l.includes(`"msg":"${msg}`)) ?? "null",
  ) as Record<string, unknown>;
const reason = async (name: string) => (await k.store.getRunner(name))?.reason;

describe("orphan instances", () => {
  it("are destroyed after two consecutive sightings; a look without them forgets the first", async () => {
    k.instance("stray", "nscloud-gone");
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual([]);
    // Missing from one listing (the listing is paged, or it is restarting): the count starts over.
    const stray = k.launchers.linux.instances.get("stray")!;
    k.launchers.linux.instances.delete("stray");
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual([]);
    k.launchers.linux.instances.set("stray", stray);
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual([]);
    expect(k.launchers.linux.destroyed).toEqual([]);
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual(["stray"]);
    expect(k.launchers.linux.destroyed).toEqual(["stray"]);
    expect(logLine(k, "destroyed orphan instance stray: it carries our labels but no live runner record owns it")).toMatchObject({
      instance: "stray",
      runner: "nscloud-gone",
    });
  });

  const cases: { what: string; state?: RunnerState; instanceId?: string; inFlight?: boolean; orphan: boolean }[] = [
    { what: "no record", orphan: true },
    { what: "a running record with this instance", state: "running", instanceId: "inst", orphan: false },
    { what: "a finishing record with this instance", state: "finishing", instanceId: "inst", orphan: false },
    { what: "a finishing record without an instance id (cancelled before its launch ended)", state: "finishing", orphan: true },
    { what: "a running record with another instance", state: "running", instanceId: "other", orphan: true },
    { what: "a launching record whose launch is in flight", state: "launching", inFlight: true, orphan: false },
    {
      what: "a launching record in flight that recorded another instance",
      state: "launching",
      instanceId: "other",
      inFlight: true,
      orphan: false,
    },
    { what: "an interrupted launch without an instance id (recovery adopts it)", state: "launching", orphan: false },
    { what: "an interrupted launch that recorded another instance", state: "launching", instanceId: "other", orphan: true },
    { what: "a done record with this instance", state: "done", instanceId: "inst", orphan: true },
    { what: "a failed record with this instance", state: "failed", instanceId: "inst", orphan: true },
  ];
  it.each(cases)("named for $what → orphan: $orphan", async ({ state: recordState, instanceId, inFlight, orphan }) => {
    const name = "nscloud-r1";
    if (recordState) await k.runner(name, recordState, instanceId ? { instanceId, expiresAt: "2027-01-01T00:00:00.000Z" } : {});
    if (inFlight) k.inFlight.add(name);
    k.instance("inst", name);
    if (instanceId === "other") k.instance("other", name);
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual([]);
    const second = await k.supervisor.tick();
    expect(second.orphansDestroyed.includes("inst")).toBe(orphan);
    // A finishing runner's own instance is destroyed by its finish, once; never as an orphan.
    const destroyedAsOrphanOrFinish = orphan || recordState === "finishing" ? 1 : 0;
    expect(k.launchers.linux.destroyed.filter((i) => i === "inst")).toHaveLength(destroyedAsOrphanOrFinish);
  });

  it.each([
    { what: "without an instance id", instanceId: undefined, orphan: false },
    { what: "that recorded another instance", instanceId: "other", orphan: true },
  ])(
    "named for an interrupted launch $what that recovery cannot settle yet (its listings fail) → orphan: $orphan",
    async ({ instanceId, orphan }) => {
      await k.runner("nscloud-i", "launching", instanceId ? { instanceId } : {});
      k.instance("inst", "nscloud-i");
      // Every tick recovery lists first and fails; the tick's own listing works.
      const launcher = k.launchers.linux;
      const list = launcher.list.bind(launcher);
      let calls = 0;
      launcher.list = async (labels) => {
        if (calls++ % 2 === 0) throw new Error("invocation error: unavailable");
        return list(labels);
      };
      await k.supervisor.tick();
      const second = await k.supervisor.tick();
      expect((await k.store.getRunner("nscloud-i"))!.state).toBe("launching");
      expect(second.orphansDestroyed).toEqual(orphan ? ["inst"] : []);
    },
  );

  it("a failed destroy is retried on the next tick", async () => {
    k.instance("stray", "nscloud-gone");
    const launcher = k.launchers.linux;
    const destroy = launcher.destroy.bind(launcher);
    let failures = 1;
    launcher.destroy = async (id: string) => {
      if (failures-- > 0) throw new Error("invocation error: unavailable");
      return destroy(id);
    };
    await k.supervisor.tick();
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual([]);
    expect(logLine(k, "could not destroy orphan instance; will retry")).toMatchObject({
      instance: "stray",
      err: "invocation error: unavailable",
    });
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual(["stray"]);
  });

  it("an instance without a platform label is judged with Linux; a Windows instance only with Windows", async () => {
    k.instance("bare", undefined);
    k.instance("win", "nscloud-w", "windows");
    const first = await k.supervisor.tick();
    expect(first.observed).toEqual({ linux: 1, windows: 1, macos: 0 });
    const second = await k.supervisor.tick();
    expect(second.orphansDestroyed.sort()).toEqual(["bare", "win"]);
    expect(k.launchers.linux.destroyed).toEqual(["bare"]);
    expect(k.launchers.windows.destroyed).toEqual(["win"]);
  });

  it("lists only instances carrying this dispatcher's owner label", async () => {
    k.launchers.linux.instances.set("foreign", { instanceId: "foreign", labels: { "forgejo-nsc.owner": "another-dispatcher" } });
    await k.supervisor.tick();
    await k.supervisor.tick();
    expect(k.launchers.linux.destroyed).toEqual([]);
    expect(k.launchers.linux.listCalls).toEqual([{ "forgejo-nsc.owner": "default" }, { "forgejo-nsc.owner": "default" }]);
  });
});

describe("launchers that share one listing", () => {
  const share = (l: Launcher, source: string) => Object.defineProperty(l, "listSource", { value: source });

  it("are listed once per tick, through the Linux launcher when Linux is among them", async () => {
    share(k.launchers.linux, "nsc");
    share(k.launchers.windows, "nsc");
    await k.runner("nscloud-w", "running", { platform: "windows", instanceId: "w1", expiresAt: "2027-01-01T00:00:00.000Z" });
    // The shared listing shows every instance of the source, whatever the platform.
    k.instance("w1", "nscloud-w", "linux");
    k.launchers.linux.instances.get("w1")!.labels["forgejo-nsc.platform"] = "windows";
    for (let i = 0; i < 3; i++) {
      const report = await k.supervisor.tick();
      expect(report.observed).toEqual({ linux: 0, windows: 1, macos: 0 });
    }
    expect(k.launchers.linux.listCalls).toHaveLength(3);
    expect(k.launchers.windows.listCalls).toHaveLength(0);
    expect(await state("nscloud-w")).toBe("running");
  });

  it("are listed through the first platform of the group otherwise", async () => {
    share(k.launchers.windows, "shared");
    share(k.launchers.macos, "shared");
    await k.supervisor.tick();
    expect(k.launchers.windows.listCalls).toHaveLength(1);
    expect(k.launchers.macos.listCalls).toHaveLength(0);
    expect(k.launchers.linux.listCalls).toHaveLength(1);
  });

  it("a failed listing marks every platform of the source and judges nothing", async () => {
    share(k.launchers.linux, "nsc");
    share(k.launchers.windows, "nsc");
    await k.runner("nscloud-l", "running", { instanceId: "gone", expiresAt: "2027-01-01T00:00:00.000Z" });
    k.launchers.linux.failList = 3;
    for (let i = 0; i < 3; i++) expect((await k.supervisor.tick()).observed).toEqual({ linux: "error", windows: "error", macos: 0 });
    expect(logLine(k, "could not list instances; no runner is judged on this tick")).toMatchObject({
      source: "nsc",
      err: "invocation error: unavailable",
    });
    // Three failed looks are not two misses: the runner is judged only once lists agree.
    expect(await state("nscloud-l")).toBe("running");
    await k.supervisor.tick();
    expect(await state("nscloud-l")).toBe("running");
    await k.supervisor.tick();
    expect(await state("nscloud-l")).toBe("done");
  });
});

describe("running runners", () => {
  const far = "2027-01-01T00:00:00.000Z";

  it("end only after two consecutive looks without their instance", async () => {
    await k.runner("nscloud-a", "running", { instanceId: "ia", expiresAt: far, registration: "token" });
    k.instance("ia", "nscloud-a");
    await k.supervisor.tick();
    k.launchers.linux.endInstance("ia");
    expect((await k.supervisor.tick()).finished).toEqual([]);
    // Back in the next listing: the miss is forgotten.
    k.instance("ia", "nscloud-a");
    await k.supervisor.tick();
    k.launchers.linux.endInstance("ia");
    expect((await k.supervisor.tick()).finished).toEqual([]);
    expect(await state("nscloud-a")).toBe("running");
    expect((await k.supervisor.tick()).finished).toEqual(["nscloud-a"]);
    const r = (await k.store.getRunner("nscloud-a"))!;
    expect(r.state).toBe("done");
    expect(r.reason).toBe("instance ia ended: forgejo-runner exited");
    expect(r.finishedAt).toBe(k.ctx.now().toISOString());
  });

  it("a miss is forgotten once a look no longer judges the runner: missed, not judged, missed again is one miss", async () => {
    await k.runner("nscloud-c", "running", { instanceId: "ic", expiresAt: far, registration: "token" });
    expect((await k.supervisor.tick()).finished).toEqual([]);
    // Out of `running` for one look (here: launching again under its name, its launch in flight).
    k.inFlight.add("nscloud-c");
    await k.store.transition("nscloud-c", ["running"], "launching", "test: relaunching", {}, k.ctx.now());
    expect((await k.supervisor.tick()).finished).toEqual([]);
    await k.store.transition("nscloud-c", ["launching"], "running", "test: running again", {}, k.ctx.now());
    k.inFlight.delete("nscloud-c");
    expect((await k.supervisor.tick()).finished).toEqual([]);
    expect(await state("nscloud-c")).toBe("running");
    expect((await k.supervisor.tick()).finished).toEqual(["nscloud-c"]);
  });

  it("are not judged while launching or without an instance id", async () => {
    // Its launch has recorded an instance id the listing does not show yet.
    await k.runner("nscloud-l", "launching", { instanceId: "not-listed-yet" });
    // A launch in progress (one that is not is settled instead: see "launches that stopped").
    k.inFlight.add("nscloud-l");
    await k.runner("nscloud-n", "running", { expiresAt: far });
    for (let i = 0; i < 3; i++) expect((await k.supervisor.tick()).finished).toEqual([]);
    expect(await state("nscloud-l")).toBe("launching");
    expect(await state("nscloud-n")).toBe("running");
  });

  it("whose instance ended are done or failed by what Forgejo says about the registration", async () => {
    // kept: the ephemeral registration still exists, so the runner never took its job.
    const kept = k.registration("nscloud-kept");
    await k.runner("nscloud-kept", "running", { instanceId: "i1", expiresAt: far, registration: "ephemeral", forgejoRunnerId: kept.id });
    // used: Forgejo removed the registration after the job.
    const used = k.registration("nscloud-used");
    k.forgejo.world.deleteRunner(used);
    await k.runner("nscloud-used", "running", { instanceId: "i2", expiresAt: far, registration: "ephemeral", forgejoRunnerId: used.id });
    // An ephemeral record without a runner id, and a token-mode runner: nothing to ask.
    await k.runner("nscloud-noid", "running", { instanceId: "i3", expiresAt: far, registration: "ephemeral" });
    // A token-mode runner's id (its own registration) is not an ephemeral one: Forgejo is not asked.
    await k.runner("nscloud-token", "running", { instanceId: "i4", expiresAt: far, registration: "token", forgejoRunnerId: 99_999 });
    await k.supervisor.tick();
    const report = await k.supervisor.tick();
    expect(report.finished.sort()).toEqual(["nscloud-kept", "nscloud-noid", "nscloud-token", "nscloud-used"]);
    expect(await k.store.getRunner("nscloud-kept")).toMatchObject({
      state: "failed",
      reason: "instance i1 ended before forgejo-runner finished a job; registration removed",
    });
    expect(k.forgejo.runner(kept.id)!.deleted).toBe(true);
    expect(await k.store.getRunner("nscloud-used")).toMatchObject({ state: "done", reason: "instance i2 ended after its job finished" });
    expect(await k.store.getRunner("nscloud-noid")).toMatchObject({ state: "done", reason: "instance i3 ended: forgejo-runner exited" });
    expect(await k.store.getRunner("nscloud-token")).toMatchObject({ state: "done", reason: "instance i4 ended: forgejo-runner exited" });
    // Instances that ended on their own are not destroyed again.
    expect(k.launchers.linux.destroyed.sort()).toEqual(["i1", "i2", "i3", "i4"]);
  });

  it("whose instance ended while Forgejo cannot be asked are done, with the reason", async () => {
    const reg = k.registration("nscloud-x");
    await k.runner("nscloud-x", "running", { instanceId: "ix", expiresAt: far, registration: "ephemeral", forgejoRunnerId: reg.id });
    await k.supervisor.tick();
    k.forgejo.failNext(`/actions/runners/${reg.id}`, 500, 1, { method: "GET" });
    await k.supervisor.tick();
    const r = (await k.store.getRunner("nscloud-x"))!;
    expect(r.state).toBe("done");
    expect(r.reason).toMatch(/^instance ix ended \(could not ask Forgejo whether the job ran: .+\)$/);
  });

  it("reaching the TTL are failed and their instance destroyed, not a moment before", async () => {
    const expires = new Date(k.ctx.now().getTime() + 60_000).toISOString();
    await k.runner("nscloud-t", "running", { instanceId: "it", expiresAt: expires, registration: "token" });
    k.instance("it", "nscloud-t");
    k.advance(59_999);
    expect((await k.supervisor.tick()).finished).toEqual([]);
    k.advance(1);
    expect((await k.supervisor.tick()).finished).toEqual(["nscloud-t"]);
    expect(await k.store.getRunner("nscloud-t")).toMatchObject({
      state: "failed",
      reason: "TTL 30m0s reached before the job finished; instance destroyed",
    });
    expect(k.launchers.linux.destroyed).toEqual(["it"]);
  });

  it("finishing ones are finished again; one whose destroy fails again is not reported finished", async () => {
    await k.runner("nscloud-f", "finishing", { instanceId: "if", reason: "failing: cancelled through the API", outcome: "failed" });
    await k.runner("nscloud-g", "finishing", { instanceId: "ig", reason: "finishing: job done", outcome: "done" });
    const launcher = k.launchers.linux;
    const destroy = launcher.destroy.bind(launcher);
    launcher.destroy = async (id: string) => {
      if (id === "ig") throw new Error("invocation error: unavailable");
      return destroy(id);
    };
    const report = await k.supervisor.tick();
    expect(report.finished).toEqual(["nscloud-f"]);
    expect(await k.store.getRunner("nscloud-f")).toMatchObject({ state: "failed", reason: "cancelled through the API" });
    expect(await state("nscloud-g")).toBe("finishing");
    launcher.destroy = destroy;
    expect((await k.supervisor.tick()).finished).toEqual(["nscloud-g"]);
    expect(await k.store.getRunner("nscloud-g")).toMatchObject({ state: "done", reason: "job done" });
  });

  it("are finished with bounded concurrency: max(4, namespace.max_parallel) destroys at a time", async () => {
    await k.close();
    k = await startDecisionKit({ yaml: { namespace: { max_parallel: 6 } } });
    const now = k.ctx.now().toISOString();
    for (let i = 0; i < 10; i++) await k.runner(`nscloud-c${i}`, "running", { instanceId: `c${i}`, expiresAt: now, registration: "token" });
    let active = 0;
    let peak = 0;
    const gates: (() => void)[] = [];
    k.launchers.linux.destroy = async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise<void>((resolve) => gates.push(resolve));
      active--;
    };
    const tick = k.supervisor.tick();
    // Release destroys as they queue up until all ten have run.
    let released = 0;
    while (released < 10) {
      await new Promise((r) => setImmediate(r));
      const g = gates.shift();
      if (g) {
        g();
        released++;
      }
    }
    expect((await tick).finished).toHaveLength(10);
    expect(peak).toBe(6);
  });
});

describe("ticks", () => {
  it("a tick asked for while one runs joins it", async () => {
    const a = k.supervisor.tick();
    const b = k.supervisor.tick();
    expect(b).toBe(a);
    await a;
    const c = k.supervisor.tick();
    expect(c).not.toBe(a);
    await c;
  });

  it("set the runner gauges from the tick's records, pending ones included", async () => {
    await k.runner("nscloud-p", "pending", {});
    await k.runner("nscloud-r", "running", { instanceId: "ir", expiresAt: "2027-01-01T00:00:00.000Z", platform: "windows" });
    k.instance("ir", "nscloud-r", "windows");
    await k.runner("nscloud-d", "done", {});
    await k.supervisor.tick();
    const values = (await k.ctx.metrics.runnersByState.get()).values.map((v) => [v.labels.state, v.labels.platform, v.value]);
    expect(values.sort()).toEqual([
      ["pending", "linux", 1],
      ["running", "windows", 1],
    ]);
    await k.store.transition("nscloud-p", ["pending"], "failed", "test", {}, k.ctx.now());
    await k.supervisor.tick();
    expect((await k.ctx.metrics.runnersByState.get()).values.map((v) => [v.labels.state, v.value])).toEqual([["running", 1]]);
  });

  it("retry a recovery that could not list its platform at start, until it can", async () => {
    await k.runner("nscloud-i", "launching", {});
    k.instance("ii", "nscloud-i");
    k.supervisor.recoverOnNextTick();
    k.launchers.linux.failList = 1;
    // The recovery's listing fails: the runner stays launching (and the tick's own listing works).
    await k.supervisor.tick();
    expect(await state("nscloud-i")).toBe("launching");
    expect(k.logs()).not.toContain("recovered interrupted launches");
    expect(k.logs()).not.toContain("settled launches");
    await k.supervisor.tick();
    expect(await k.store.getRunner("nscloud-i")).toMatchObject({ state: "running", instanceId: "ii" });
    expect(logLine(k, "recovered interrupted launches once their platform could be listed")).toMatchObject({
      adopted: ["nscloud-i"],
      unobservable: [],
    });
    expect(k.logs()).not.toContain("settled launches");
    // Recovered: later ticks do not run recovery again (one listing per tick).
    const calls = k.launchers.linux.listCalls.length;
    await k.supervisor.tick();
    expect(k.launchers.linux.listCalls.length).toBe(calls + 1);
  });
});

describe("launches that stopped without recording their outcome", () => {
  // The state database refused the launch's last write, or the launch crashed: the record says
  // launching but no launch owns it. The running supervisor settles it, not only the next start.
  it("are adopted when an instance carries the runner's name", async () => {
    await k.runner("nscloud-s", "launching", {});
    k.instance("is", "nscloud-s");
    const report = await k.supervisor.tick();
    expect(await k.store.getRunner("nscloud-s")).toMatchObject({
      state: "running",
      instanceId: "is",
      reason: "settled a launch that stopped without recording its outcome: adopted instance is",
    });
    expect(report.orphansDestroyed).toEqual([]);
    expect(k.logs()).toContain("settled launches that stopped without recording their outcome");
  });

  it("are launched again when no instance of theirs exists, and left alone while their launch runs", async () => {
    await k.runner("nscloud-t", "launching", {});
    await k.runner("nscloud-f", "launching", {});
    k.inFlight.add("nscloud-f");
    await k.supervisor.tick();
    expect(await k.store.getRunner("nscloud-t")).toMatchObject({
      state: "pending",
      reason: "settled a launch that stopped without recording its outcome: no instance of it exists; launching again",
    });
    expect(await state("nscloud-f")).toBe("launching");
    expect(logLine(k, "settled launches that stopped without recording their outcome")).toMatchObject({
      requeued: ["nscloud-t"],
      adopted: [],
      failed: [],
    });
    // Nothing stranded: later ticks list once each, as before.
    const calls = k.launchers.linux.listCalls.length;
    await k.supervisor.tick();
    expect(k.launchers.linux.listCalls.length).toBe(calls + 1);
  });

  it("past their queue deadline and without an instance are failed, and the tick says what it settled", async () => {
    await k.runner("nscloud-s", "launching", { createdAtMs: -3_600_000 });
    await k.supervisor.tick();
    expect(await k.store.getRunner("nscloud-s")).toMatchObject({
      state: "failed",
      reason: "settled a launch that stopped without recording its outcome: no instance of it exists and the queue deadline has passed",
    });
    expect(logLine(k, "settled launches that stopped without recording their outcome")).toMatchObject({ failed: ["nscloud-s"] });
  });

  it("whose instance ran the job meanwhile are done, and the tick says so", async () => {
    const reg = k.registration("nscloud-c");
    k.forgejo.world.deleteRunner(reg);
    await k.runner("nscloud-c", "launching", { registration: "ephemeral", forgejoRunnerId: reg.id });
    await k.supervisor.tick();
    expect((await k.store.getRunner("nscloud-c"))!.state).toBe("done");
    expect(logLine(k, "settled launches that stopped without recording their outcome")).toMatchObject({ completed: ["nscloud-c"] });
  });

  it("stay launching while their platform cannot be listed, and a tick that settles nothing logs nothing", async () => {
    await k.runner("nscloud-u", "launching", {});
    k.launchers.linux.failList = 1;
    await k.supervisor.tick();
    expect(await state("nscloud-u")).toBe("launching");
    expect(k.logs()).not.toContain("settled launches");
  });

  it("are looked for without an extra query: a tick with nothing stranded reads the live runners and the pending ones (gauges)", async () => {
    await k.runner("nscloud-r", "running", { instanceId: "ir", expiresAt: "2027-01-01T00:00:00.000Z" });
    await k.runner("nscloud-l", "launching", {});
    k.inFlight.add("nscloud-l");
    k.instance("ir", "nscloud-r");
    const list = k.store.listRunners.bind(k.store);
    const bare = k.store.listRunnersWithoutHistory.bind(k.store);
    const queries: unknown[] = [];
    k.store.listRunners = async (f) => {
      queries.push(["listRunners", f]);
      return list(f);
    };
    k.store.listRunnersWithoutHistory = async (f) => {
      queries.push(["listRunnersWithoutHistory", f]);
      return bare(f);
    };
    await k.supervisor.tick();
    // The gauges count states: they read the pending runners without their histories.
    expect(queries).toEqual([
      ["listRunners", { states: ["launching", "running", "finishing"] }],
      ["listRunnersWithoutHistory", { states: ["pending"] }],
    ]);
  });

  it("once settled, the tick judges the records as they are now", async () => {
    await k.runner("nscloud-s", "launching", {});
    await k.runner("nscloud-d", "done", { instanceId: "inst" });
    k.instance("inst", "nscloud-d");
    await k.supervisor.tick();
    expect(await state("nscloud-s")).toBe("pending");
    // The done record explains nothing: its instance is an orphan, destroyed on the second look.
    expect((await k.supervisor.tick()).orphansDestroyed).toEqual(["inst"]);
  });
});

describe("tick bookkeeping", () => {
  it("a finish that throws is logged and the other runners are still finished", async () => {
    const now = k.ctx.now().toISOString();
    await k.runner("nscloud-a", "running", { instanceId: "ia", expiresAt: now, registration: "token" });
    await k.runner("nscloud-b", "running", { instanceId: "ib", expiresAt: now, registration: "token" });
    const transition = k.store.transition.bind(k.store);
    k.store.transition = async (name, ...rest) => {
      if (name === "nscloud-a") throw new Error("disk I/O error");
      return transition(name, ...rest);
    };
    const report = await k.supervisor.tick();
    expect(report.finished).toEqual(["nscloud-b"]);
    expect(logLine(k, "finishing a runner failed; it is retried on the next tick")).toMatchObject({ err: "disk I/O error" });
  });

  it("each tick is timed, failed or not", async () => {
    await k.supervisor.tick();
    k.store.listRunners = async () => {
      throw new Error("database is locked");
    };
    await expect(k.supervisor.tick()).rejects.toThrow("database is locked");
    const hist = await k.ctx.metrics.superviseDuration.get();
    expect(hist.values.find((v) => v.metricName?.endsWith("_count"))?.value).toBe(2);
  });
});

describe("Windows runners whose registration Forgejo removed", () => {
  it("are done and their instance destroyed once two listings and a GET agree", async () => {
    const reg = k.registration("nscloud-w");
    await k.runner("nscloud-w", "running", {
      platform: "windows",
      instanceId: "w1",
      expiresAt: "2027-01-01T00:00:00.000Z",
      registration: "ephemeral",
      forgejoRunnerId: reg.id,
    });
    k.instance("w1", "nscloud-w", "windows");
    await k.supervisor.tick();
    k.forgejo.world.deleteRunner(reg);
    await k.supervisor.tick();
    expect(await state("nscloud-w")).toBe("running");
    const report = await k.supervisor.tick();
    expect(report.finished).toEqual(["nscloud-w"]);
    expect(await reason("nscloud-w")).toBe("job finished: Forgejo removed the ephemeral runner; instance w1 destroyed");
    expect(k.launchers.windows.destroyed).toEqual(["w1"]);
  });
});
