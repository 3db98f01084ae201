import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { createDispatcher } from "../../src/dispatcher/app.js";
import type { Dispatcher } from "../../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../../src/dispatcher/wiring.js";
import type { Store } from "../../src/store/types.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { ControllableLauncher } from "../fakes/launcher/controllable-launcher.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { T0, dispatchWith } from "../store/records.js";

interface Setup {
  d: Dispatcher;
  store: Store;
  launcher: ControllableLauncher;
  windows: ControllableLauncher;
  forgejo: FakeForgejo;
  close: () => Promise<void>;
}

let s: Setup | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

/** Upstream publishes no Windows build: the operator hosts one (never fetched here). */
const WINDOWS_BINARY = `runner: {binaries: {windows_amd64: {url: "https://forgejo.example/forgejo-runner.exe", sha256: "${"0".repeat(64)}"}}}\n`;

async function setup(yaml: string, caps = "", before?: (store: Store, launcher: ControllableLauncher) => Promise<void>): Promise<Setup> {
  const tmp = tempDir();
  const forgejo = await startFakeForgejo({
    repos: [
      { owner: "a", name: "one" },
      { owner: "a", name: "two" },
    ],
  });
  const config = parseConfig(
    dispatcherConfigSchema,
    `forgejo: {base_url: "${forgejo.url}", token: "${FAKE_ADMIN_TOKEN}", timeout: 5s}\ndispatcher: {state_path: "${join(tmp.dir, "s.db")}", ${caps}}\n${WINDOWS_BINARY}${yaml}`,
    "t.yaml",
    {},
  );
  const { logger } = captureLogger();
  // The real wiring (store, Forgejo client, lease), with controllable launchers in place of nsc's.
  const deps = await buildDispatcherDeps(config, logger);
  const store = deps.store;
  const launcher = new ControllableLauncher();
  const windows = new ControllableLauncher("windows");
  const d = await createDispatcher({ ...deps, launchers: { linux: launcher, windows }, timers: false });
  await before?.(store, launcher);
  await d.start();
  return {
    d,
    store,
    launcher,
    windows,
    forgejo,
    close: async () => {
      await d.stop();
      await store.close();
      await forgejo.close();
      tmp.cleanup();
    },
  };
}

async function post(d: Dispatcher, body: unknown) {
  const res = await d.app.inject({ method: "POST", url: "/api/v1/dispatch", payload: body as object });
  return res.json();
}

describe("launch slots and caps", () => {
  it("max_parallel bounds launches, not running jobs: 50 queued runners all start while none has finished", async () => {
    s = await setup("namespace: {max_parallel: 4, max_runners: 100}\n");
    await post(s.d, { count: 50, labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    // Four launches run at once, and a fifth does not start while they do.
    await waitFor(() => s!.launcher.inProgress.length === 4, { what: "4 launches in progress" });
    await s.d.scheduler.pass();
    expect(s.launcher.launches).toHaveLength(4);
    let peak = 0;
    await waitFor(
      async () => {
        peak = Math.max(peak, s!.launcher.inProgress.length);
        expect(s!.launcher.inProgress.length).toBeLessThanOrEqual(4);
        if (s!.launcher.inProgress.length > 0) s!.launcher.finishLaunch();
        return (await s!.store.countRunners(["running"])) === 50;
      },
      { what: "50 running", timeoutMs: 20_000, intervalMs: 5 },
    );
    expect(peak).toBe(4);
    expect(await s.store.countRunners(["done", "failed"])).toBe(0);
  });

  it("waits at max_runners with the reason, and launches the next when a runner finishes", async () => {
    s = await setup("namespace: {max_parallel: 4, max_runners: 2}\n");
    s.launcher.autoComplete = true;
    const res = await post(s.d, { count: 3, labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    const names: string[] = res.runners.map((r: { name: string }) => r.name);
    await waitFor(async () => (await s!.store.countRunners(["running"])) === 2, { what: "2 running" });
    const third = await waitFor(
      async () => {
        const [r] = await s!.store.listRunners({ states: ["pending"] });
        return r?.reason === "waiting for capacity: max_runners=2 reached" ? r : undefined;
      },
      { what: "the capacity reason" },
    );
    expect(names).toContain(third.name);
    const [first] = await s.store.listRunners({ states: ["running"], limit: 1 });
    s.launcher.endInstance(first!.instanceId!);
    await s.d.supervisor.tick();
    await s.d.supervisor.tick();
    await waitFor(async () => (await s!.store.getRunner(third.name))?.state === "running", { what: "third runs" });
  });

  it("a per-repository cap keeps one busy repository from starving another", async () => {
    s = await setup("namespace: {max_parallel: 8, max_runners: 10}\n", "caps: [{scope: 'repo:*', max: 2}]");
    s.launcher.autoComplete = true;
    await post(s.d, { count: 5, labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    await post(s.d, { count: 1, labels: ["l"], scope: { level: "repository", owner: "a", name: "two" } });
    await waitFor(async () => (await s!.store.countRunners(["running"])) === 3, { what: "3 running" });
    const two = await s.store.listRunners({ scopeKey: "repo:a/two" });
    expect(two[0]!.state).toBe("running");
    const onePending = await s.store.listRunners({ scopeKey: "repo:a/one", states: ["pending"] });
    expect(onePending).toHaveLength(3);
    expect(onePending[0]!.reason).toBe("waiting for capacity: cap scope repo:* (per scope) max=2 reached");
  });

  it("a runner cancelled while launching gets its new instance destroyed", async () => {
    s = await setup("");
    const res = await post(s.d, { labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    const name = res.runners[0].name as string;
    await waitFor(() => s!.launcher.inProgress.includes(name), { what: "launch started" });
    const del = await s.d.app.inject({ method: "DELETE", url: `/api/v1/runners/${name}` });
    expect(del.json().state).toBe("failed");
    const id = s.launcher.finishLaunch(name);
    await waitFor(() => s!.launcher.destroyed.includes(id), { what: "instance destroyed" });
    expect((await s.store.getRunner(name))!.instanceId).toBe(id);
  });

  it("destroys an orphan instance only after two sightings", async () => {
    s = await setup("");
    s.launcher.instances.set("stray1", {
      instanceId: "stray1",
      labels: { "forgejo-nsc.owner": "default", "forgejo-nsc.runner": "nscloud-gone", "forgejo-nsc.platform": "linux" },
    });
    s.launcher.instances.set("unlabelled", { instanceId: "unlabelled", labels: { "forgejo-nsc.owner": "default" } });
    s.launcher.instances.set("foreign", {
      instanceId: "foreign",
      labels: { "forgejo-nsc.owner": "someone-else", "forgejo-nsc.platform": "linux" },
    });
    // Another platform's instance sharing the same listing must not look like a Linux orphan.
    s.launcher.instances.set("win1", {
      instanceId: "win1",
      labels: { "forgejo-nsc.owner": "default", "forgejo-nsc.runner": "nscloud-win", "forgejo-nsc.platform": "windows" },
    });
    // Every platform's pass runs each tick; an empty Windows list must not reset Linux sightings.
    const first = await s.d.supervisor.tick();
    expect(first.orphansDestroyed).toEqual([]);
    expect(first.observed).toEqual({ linux: 2, windows: 0 });
    const second = await s.d.supervisor.tick();
    expect(second.orphansDestroyed).toEqual(["stray1", "unlabelled"]);
    expect(s.launcher.destroyed).toEqual(["stray1", "unlabelled"]);
    expect(s.launcher.listCalls.every((l) => l["forgejo-nsc.owner"] === "default")).toBe(true);
  });

  it("a Windows instance that outlives its job is destroyed once Forgejo has removed the consumed runner", async () => {
    s = await setup("");
    s.windows.autoComplete = true;
    const job = s.forgejo.addJob({ repo: "a/one", runs_on: ["namespace-profile-windows-medium"] });
    const res = await post(s.d, {
      labels: ["namespace-profile-windows-medium"],
      scope: { level: "repository", owner: "a", name: "one" },
      job: { id: job.id, handle: job.handle },
    });
    const name = res.runners[0].name as string;
    const running = await waitFor(
      async () => {
        const r = await s!.store.getRunner(name);
        return r?.state === "running" ? r : undefined;
      },
      { what: "running" },
    );
    expect(running.platform).toBe("windows");
    const fr = s.forgejo.runner(running.forgejoRunnerId!)!;
    s.forgejo.connectRunner({ uuid: fr.uuid, labels: ["namespace-profile-windows-medium"], handle: job.handle });
    await s.d.supervisor.tick();
    s.forgejo.finishJob(job.id);
    // Two listings must agree (and a direct GET confirm) before the instance is destroyed.
    await s.d.supervisor.tick();
    expect((await s.store.getRunner(name))!.state).toBe("running");
    await s.d.supervisor.tick();
    const r = (await s.store.getRunner(name))!;
    expect(r.state).toBe("done");
    expect(r.reason).toBe(`job finished: Forgejo removed the ephemeral runner; instance ${running.instanceId} destroyed`);
    expect(s.windows.destroyed).toEqual([running.instanceId]);
    expect(s.forgejo.callsTo(`/actions/runners/${running.forgejoRunnerId}`, "GET")).toHaveLength(1);
  });

  it("Linux runners, whose instances end with their job, cost no Forgejo runner listings", async () => {
    s = await setup("");
    s.launcher.autoComplete = true;
    const res = await post(s.d, { labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    await waitFor(async () => (await s!.store.getRunner(res.runners[0].name))?.state === "running", { what: "running" });
    s.forgejo.clearCalls();
    await s.d.supervisor.tick();
    await s.d.supervisor.tick();
    expect(s.forgejo.callsTo("/actions/runners", "GET")).toHaveLength(0);
  });

  it("sweeps stale offline registrations with our prefix after two sightings, and nothing else", async () => {
    s = await setup("");
    s.launcher.autoComplete = true;
    const res = await post(s.d, { labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    const live = res.runners[0].name as string;
    await waitFor(async () => (await s!.store.getRunner(live))?.state === "running", { what: "running" });
    const scope = { level: "repository" as const, owner: "a", name: "one" };
    const stale = s.forgejo.world.registerRunner(scope, { name: "nscloud-stale0000", ephemeral: false, via: "registration_token" });
    const foreign = s.forgejo.world.registerRunner(scope, { name: "someone-elses-runner", ephemeral: false, via: "registration_token" });
    expect(await s.d.registrationSweep.run()).toBe(0);
    expect(await s.d.registrationSweep.run()).toBe(1);
    expect(s.forgejo.runner(stale.id)?.deleted).toBe(true);
    expect(s.forgejo.runner(foreign.id)?.deleted).toBe(false);
    // The live runner's own registration (offline until its runner connects) is kept.
    const liveReg = (await s.store.getRunner(live))!.forgejoRunnerId!;
    expect(s.forgejo.runner(liveReg)?.deleted).toBe(false);
  });

  it("recovers an interrupted launch on a later tick when its platform could not be listed at start", async () => {
    const name = "nscloud-interrupt0";
    s = await setup("", "", async (store, launcher) => {
      const { dispatch, runners } = dispatchWith({ id: "d-int", names: [name], createdAtMs: Date.now() - T0 });
      await store.createDispatch(dispatch, runners);
      await store.transition(name, ["pending"], "launching", "launch slot acquired (attempt 1/3)");
      launcher.instances.set("inst-int", {
        instanceId: "inst-int",
        labels: { "forgejo-nsc.owner": "default", "forgejo-nsc.runner": name, "forgejo-nsc.platform": "linux" },
      });
      launcher.failList = 1;
    });
    // Start-up could not list: the runner stays launching rather than being launched a second time.
    expect((await s.store.getRunner(name))!.state).toBe("launching");
    await s.d.supervisor.tick();
    const r = (await s.store.getRunner(name))!;
    expect(r.state).toBe("running");
    expect(r.instanceId).toBe("inst-int");
    expect(s.launcher.launches).toHaveLength(0);
  });

  it("a failed finish (destroy error) stays finishing and is retried on the next tick", async () => {
    s = await setup("");
    s.launcher.autoComplete = true;
    const res = await post(s.d, { labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    const name = res.runners[0].name as string;
    await waitFor(async () => (await s!.store.getRunner(name))?.state === "running", { what: "running" });
    const original = s.launcher.destroy.bind(s.launcher);
    let failures = 1;
    s.launcher.destroy = async (id: string) => {
      if (failures-- > 0) throw new Error("invocation error: unavailable");
      return original(id);
    };
    const del = await s.d.app.inject({ method: "DELETE", url: `/api/v1/runners/${name}` });
    expect(del.json().state).toBe("finishing");
    await s.d.supervisor.tick();
    expect((await s.store.getRunner(name))!.state).toBe("failed");
  });
});

describe("a runner being claimed for launch", () => {
  it("is not taken for a stranded launch by a tick that reads it between its claim and its launch", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let claimed = false;
    s = await setup("", "", async (store, launcher) => {
      launcher.autoComplete = true;
      // The claim (pending -> launching) is committed, but its launch has not started yet.
      const transition = store.transition.bind(store);
      store.transition = async (...args: Parameters<Store["transition"]>) => {
        const r = await transition(...args);
        if (args[2] === "launching" && !claimed) {
          claimed = true;
          await gate;
        }
        return r;
      };
    });
    const res = await post(s.d, { labels: ["l"], scope: { level: "repository", owner: "a", name: "one" } });
    const name = res.runners[0].name as string;
    await waitFor(() => claimed, { what: "the claim to be recorded" });
    expect(s.d.scheduler.isLaunching(name)).toBe(true);
    await s.d.supervisor.tick();
    expect((await s.store.getRunner(name))!.state).toBe("launching");
    release();
    await waitFor(async () => (await s!.store.getRunner(name))?.state === "running", { what: "the launch to complete" });
    expect((await s.store.getRunner(name))!.history.map((t) => t.to)).toEqual(["pending", "launching", "running"]);
    expect(s.launcher.launches).toHaveLength(1);
  });
});
