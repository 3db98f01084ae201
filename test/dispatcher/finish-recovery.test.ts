import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { finishRunner, outcomeOf } from "../../src/dispatcher/finish.js";
import { recover } from "../../src/dispatcher/recovery.js";
import type { RunnerRecord } from "../../src/store/types.js";
import type { DecisionKit } from "./decision-kit.js";
import { KIT_T0, startDecisionKit } from "./decision-kit.js";

let k: DecisionKit;
beforeEach(async () => {
  k = await startDecisionKit();
});
afterEach(async () => {
  await k.close();
});

const far = "2027-01-01T00:00:00.000Z";
/** The first JSON log line with this message. */
const logLine = (msg: string) =>
  JSON.parse(
    k
      .logs()
      .split("\n")
      .find((l) => l.includes(`"msg":"${msg}"`)) ?? "null",
  ) as Record<string, unknown>;

describe("finishRunner", () => {
  it.each([
    ["failed", "failing: "],
    ["done", "finishing: "],
  ] as const)("records the intent first, then destroys, deletes the registration and ends %s", async (to, prefix) => {
    const reg = k.registration("nscloud-a");
    const r = await k.runner("nscloud-a", "running", {
      instanceId: "ia",
      expiresAt: far,
      registration: "ephemeral",
      forgejoRunnerId: reg.id,
    });
    const seen: string[] = [];
    k.launchers.linux.destroy = async (id) => {
      seen.push(`destroy ${id} while ${(await k.store.getRunner("nscloud-a"))!.reason}`);
    };
    const end = await finishRunner(k.ctx, r, { to, reason: "the reason" });
    expect(seen).toEqual([`destroy ia while ${prefix}the reason`]);
    expect(end).toMatchObject({ state: to, reason: "the reason", finishedAt: k.ctx.now().toISOString() });
    expect(end!.history.map((h) => h.to)).toEqual(["pending", "launching", "running", "finishing", to]);
    expect(k.forgejo.runner(reg.id)!.deleted).toBe(true);
  });

  it("ends a pending runner (nothing to destroy or delete) and refuses one that is not finishing without an outcome", async () => {
    const p = await k.runner("nscloud-p", "pending");
    await expect(finishRunner(k.ctx, p)).rejects.toThrow("finishRunner needs an outcome for a runner that is not finishing");
    const end = await finishRunner(k.ctx, p, { to: "failed", reason: "cancelled through the API" });
    expect(end).toMatchObject({ state: "failed", reason: "cancelled through the API" });
    expect(k.launchers.linux.destroyed).toEqual([]);
    expect(k.forgejo.callsTo("/actions/runners", "DELETE")).toEqual([]);
  });

  it("does nothing when another path moved the runner first", async () => {
    const r = await k.runner("nscloud-m", "running", { instanceId: "im", expiresAt: far });
    await k.store.transition("nscloud-m", ["running"], "finishing", "finishing: elsewhere", {}, k.ctx.now());
    expect(await finishRunner(k.ctx, r, { to: "failed", reason: "late" })).toBeUndefined();
    expect(k.launchers.linux.destroyed).toEqual([]);
    // A pending runner is only ended from pending: one that started launching meanwhile is left alone.
    const p = await k.runner("nscloud-q", "pending");
    await k.store.transition("nscloud-q", ["pending"], "launching", "slot", {}, k.ctx.now());
    expect(await finishRunner(k.ctx, p, { to: "failed", reason: "late" })).toBeUndefined();
    expect((await k.store.getRunner("nscloud-q"))!.state).toBe("launching");
  });

  it("stays finishing when the destroy fails, and a later call completes it with the outcome first chosen", async () => {
    const reg = k.registration("nscloud-d");
    const r = await k.runner("nscloud-d", "running", {
      instanceId: "id1",
      expiresAt: far,
      registration: "ephemeral",
      forgejoRunnerId: reg.id,
    });
    const destroy = k.launchers.linux.destroy.bind(k.launchers.linux);
    k.launchers.linux.destroy = async () => {
      throw new Error("invocation error: unavailable");
    };
    const stuck = (await finishRunner(k.ctx, r, { to: "failed", reason: "TTL reached" }))!;
    expect(stuck).toMatchObject({ state: "finishing", reason: "failing: TTL reached" });
    expect(stuck.outcome).toBe("failed");
    // The registration is kept until the instance is gone: the runner could still be using it.
    expect(k.forgejo.runner(reg.id)!.deleted).toBe(false);
    expect(logLine("destroying the instance failed; will retry on the next supervision tick")).toMatchObject({
      runner: "nscloud-d",
      instance: "id1",
      err: "invocation error: unavailable",
    });
    k.launchers.linux.destroy = destroy;
    expect(await finishRunner(k.ctx, stuck)).toMatchObject({ state: "failed", reason: "TTL reached" });
  });

  it("stays finishing when the registration cannot be deleted", async () => {
    const reg = k.registration("nscloud-e");
    const r = await k.runner("nscloud-e", "running", {
      instanceId: "ie",
      expiresAt: far,
      registration: "ephemeral",
      forgejoRunnerId: reg.id,
    });
    k.forgejo.failNext(`/actions/runners/${reg.id}`, 500, 1, { method: "DELETE" });
    const stuck = (await finishRunner(k.ctx, r, { to: "done", reason: "job done: a: b" }))!;
    expect(stuck.state).toBe("finishing");
    expect(logLine("deleting the Forgejo runner registration failed; will retry on the next supervision tick")).toMatchObject({
      runner: "nscloud-e",
      instance: "ie",
      err: expect.stringContaining("500"),
    });
    // Only the first ": " separates the intent from the reason.
    expect(await finishRunner(k.ctx, stuck)).toMatchObject({ state: "done", reason: "job done: a: b" });
  });

  it("does not delete the registration of a token-mode runner", async () => {
    const r = await k.runner("nscloud-t", "running", { instanceId: "it", expiresAt: far, registration: "token", forgejoRunnerId: 77 });
    expect(await finishRunner(k.ctx, r, { to: "done", reason: "ok" })).toMatchObject({ state: "done" });
    expect(k.forgejo.callsTo("/actions/runners", "DELETE")).toEqual([]);
  });

  it("stays finishing when no launcher serves the runner's platform", async () => {
    delete (k.ctx.launchers as Record<string, unknown>).macos;
    const r = await k.runner("nscloud-mac", "running", { platform: "macos", instanceId: "im", expiresAt: far });
    expect(await finishRunner(k.ctx, r, { to: "done", reason: "ok" })).toMatchObject({ state: "finishing" });
    expect(k.logs()).toContain("no launcher for platform macos");
  });

  it("outcomeOf reads the outcome recorded as the runner entered finishing, never its reason", () => {
    const r = (reason: string, outcome?: "done" | "failed") => ({ reason, outcome }) as RunnerRecord;
    expect(outcomeOf(r("finishing: x", "failed"))).toBe("failed");
    expect(outcomeOf(r("failing: x", "done"))).toBe("done");
    // A record without one (nothing the dispatcher writes) ends done.
    expect(outcomeOf(r("failing: x"))).toBe("done");
  });

  it("ends a finishing runner with its recorded outcome and the reason without the intent", async () => {
    const r = await k.runner("nscloud-o", "finishing", { instanceId: "io", reason: "failing: TTL reached", outcome: "failed" });
    expect(await finishRunner(k.ctx, r)).toMatchObject({ state: "failed", reason: "TTL reached", outcome: "failed" });
    // Only the recorded intent's words are taken off.
    const odd = await k.runner("nscloud-p", "finishing", { instanceId: "ip", reason: "failing: x", outcome: "done" });
    expect(await finishRunner(k.ctx, odd)).toMatchObject({ state: "done", reason: "failing: x" });
  });
});

describe("recover", () => {
  it("adopts the instance of an interrupted launch, dating it from the instance's creation", async () => {
    await k.runner("nscloud-a", "launching", {});
    k.instance("ia", "nscloud-a", "linux", { createdAt: new Date(KIT_T0 - 120_000).toISOString() });
    await k.runner("nscloud-b", "launching", {});
    k.instance("ib", "nscloud-b");
    const report = await recover(k.ctx);
    expect(report).toEqual({ adopted: ["nscloud-a", "nscloud-b"], completed: [], requeued: [], failed: [], unobservable: [] });
    expect(await k.store.getRunner("nscloud-a")).toMatchObject({
      state: "running",
      reason: "recovered after a restart: adopted instance ia whose launch was interrupted",
      instanceId: "ia",
      launchedAt: new Date(KIT_T0 - 120_000).toISOString(),
      expiresAt: new Date(KIT_T0 - 120_000 + 1_800_000).toISOString(),
    });
    // No creation time: from now.
    expect(await k.store.getRunner("nscloud-b")).toMatchObject({
      launchedAt: new Date(KIT_T0).toISOString(),
      expiresAt: new Date(KIT_T0 + 1_800_000).toISOString(),
    });
    expect(k.launchers.linux.listCalls).toEqual([{ "forgejo-nsc.owner": "default" }]);
  });

  it("requeues an interrupted launch without an instance, deleting its unused registration", async () => {
    const reg = k.registration("nscloud-r");
    await k.runner("nscloud-r", "launching", { registration: "ephemeral", forgejoRunnerId: reg.id });
    // A token-mode runner's registration is its own (shared token): recovery leaves it to the sweep.
    const tokenReg = k.registration("nscloud-tok");
    await k.runner("nscloud-tok", "launching", { registration: "token", forgejoRunnerId: tokenReg.id });
    // Records in other states are none of recovery's business, registrations included.
    const other = k.registration("nscloud-running");
    await k.runner("nscloud-running", "running", {
      instanceId: "ir",
      expiresAt: far,
      registration: "ephemeral",
      forgejoRunnerId: other.id,
    });
    await k.runner("nscloud-pending", "pending", {});
    const report = await recover(k.ctx);
    expect(report.requeued).toEqual(["nscloud-r", "nscloud-tok"]);
    expect(k.forgejo.runner(other.id)!.deleted).toBe(false);
    expect(k.forgejo.runner(tokenReg.id)!.deleted).toBe(false);
    expect(k.logs()).not.toContain("could not delete the unused registration");
    expect(await k.store.getRunner("nscloud-r")).toMatchObject({
      state: "pending",
      reason: "recovered after a restart: the launch was interrupted before an instance existed; launching again",
    });
    expect(k.forgejo.runner(reg.id)!.deleted).toBe(true);
    expect(k.forgejo.callsTo("/actions/runners", "DELETE")).toHaveLength(1);
  });

  it("fails one whose queue deadline has passed, at the deadline exactly", async () => {
    await k.runner("nscloud-late", "launching", {});
    k.advance(3_600_000);
    const report = await recover(k.ctx);
    expect(report.failed).toEqual(["nscloud-late"]);
    expect(await k.store.getRunner("nscloud-late")).toMatchObject({
      state: "failed",
      reason: "recovered after a restart: the launch was interrupted and the queue deadline has passed",
      finishedAt: k.ctx.now().toISOString(),
    });
  });

  it("records as done a launch whose instance already ran the job (Forgejo removed the registration)", async () => {
    const reg = k.registration("nscloud-c");
    k.forgejo.world.deleteRunner(reg);
    await k.runner("nscloud-c", "launching", { registration: "ephemeral", forgejoRunnerId: reg.id });
    const report = await recover(k.ctx);
    expect(report.completed).toEqual(["nscloud-c"]);
    const r = (await k.store.getRunner("nscloud-c"))!;
    expect(r.state).toBe("done");
    expect(r.reason).toMatch(/^recovered after a restart: the interrupted launch's instance already ran its job and ended/);
    expect(r.finishedAt).toBe(k.ctx.now().toISOString());
  });

  it("requeues when Forgejo cannot say whether the registration exists", async () => {
    const reg = k.registration("nscloud-u");
    await k.runner("nscloud-u", "launching", { registration: "ephemeral", forgejoRunnerId: reg.id });
    k.forgejo.failNext(`/actions/runners/${reg.id}`, 500, 1, { method: "DELETE" });
    expect((await recover(k.ctx)).requeued).toEqual(["nscloud-u"]);
    expect(logLine("could not delete the unused registration of an interrupted launch")).toMatchObject({
      runner: "nscloud-u",
      err: expect.stringContaining("500"),
    });
  });

  it("leaves launches of a platform it cannot list, and launches in flight, alone", async () => {
    await k.runner("nscloud-w", "launching", { platform: "windows" });
    await k.runner("nscloud-f", "launching", {});
    await k.runner("nscloud-l", "launching", {});
    k.launchers.windows.failList = 1;
    const report = await recover(k.ctx, (name) => name === "nscloud-f");
    expect(report).toEqual({ adopted: [], completed: [], requeued: ["nscloud-l"], failed: [], unobservable: ["windows"] });
    expect((await k.store.getRunner("nscloud-w"))!.state).toBe("launching");
    expect((await k.store.getRunner("nscloud-f"))!.state).toBe("launching");
    expect(
      logLine("cannot list instances during recovery; interrupted launches stay pending until the next start or until listing works"),
    ).toMatchObject({
      platform: "windows",
      err: "invocation error: unavailable",
    });
    // Only platforms with interrupted launches are listed.
    expect(k.launchers.macos.listCalls).toEqual([]);
  });

  it("adopts only an instance of the runner's own platform", async () => {
    await k.runner("nscloud-x", "launching", {});
    // The shared nsc listing also shows Windows instances; one with this name is not this runner's.
    k.instance("iw", "nscloud-x", "linux");
    k.launchers.linux.instances.get("iw")!.labels["forgejo-nsc.platform"] = "windows";
    k.launchers.linux.instances.set("bare", {
      instanceId: "bare",
      labels: { "forgejo-nsc.owner": "default", "forgejo-nsc.runner": "nscloud-y" },
    });
    await k.runner("nscloud-y", "launching", {});
    const report = await recover(k.ctx);
    expect(report.requeued).toEqual(["nscloud-x"]);
    // An instance without a platform label is Linux.
    expect(report.adopted).toEqual(["nscloud-y"]);
  });

  it("requeues a launch of a platform no launcher serves", async () => {
    delete (k.ctx.launchers as Record<string, unknown>).macos;
    await k.runner("nscloud-mac", "launching", { platform: "macos" });
    expect((await recover(k.ctx)).requeued).toEqual(["nscloud-mac"]);
  });
});
