import { afterEach, describe, expect, it } from "vitest";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { waitFor } from "../helpers/wait.js";
import { dispatchesPerJob, instanceConfig, simulateRunners, startStack } from "./harness.js";
import type { Stack } from "./harness.js";

let stack: Stack | undefined;
const extra: FakeForgejo[] = [];
afterEach(async () => {
  await stack?.close();
  stack = undefined;
  for (const f of extra.splice(0)) await f.close();
});

const twoTargets = [
  { name: "linux", labels: ["linux:host", "docker"] },
  { name: "gpu", labels: ["gpu", "linux"] },
];

describe("server versions", () => {
  it("Forgejo 11: always passes each target's label names, keys unpinned runners by job", async () => {
    stack = await startStack({ forgejo: { version: "11.0.0" }, instance: { targets: twoTargets } });
    const { forgejo, dispatcher } = stack;
    simulateRunners(forgejo, dispatcher);
    const a = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const g = forgejo.addJob({ repo: "acme/app", runs_on: ["gpu"] });
    await waitFor(() => forgejo.job(a.id)?.status === "running" && forgejo.job(g.id)?.status === "running", { what: "jobs taken" });

    const searches = forgejo.callsTo("/runners/jobs", "GET");
    expect(searches.length).toBeGreaterThanOrEqual(2);
    // Every search names labels (v11–13 return nothing without), one per distinct target label set.
    expect(searches.every((c) => typeof c.query.labels === "string" && c.query.labels.length > 0)).toBe(true);
    expect(new Set(searches.map((c) => c.query.labels))).toEqual(new Set(["linux,docker", "gpu,linux"]));
    expect(searches.every((c) => c.path === "/api/v1/admin/runners/jobs")).toBe(true);
    // No runner list before 15.
    expect(forgejo.callsTo("/actions/runners", "GET").filter((c) => !c.path.endsWith("/jobs"))).toEqual([]);
    // No handles: unpinned runners, keys from the job ids.
    expect(dispatcher.dispatches.map((d) => [d.key, d.body.job])).toEqual(
      expect.arrayContaining([
        [`fj:job:${a.id}:0`, undefined],
        [`fj:job:${g.id}:0`, undefined],
      ]),
    );
    expect(dispatcher.dispatches.find((d) => d.key === `fj:job:${g.id}:0`)!.body.labels).toEqual(["gpu", "linux"]);
    const status = await stack.status();
    expect(status.instances[0]!.server).toMatchObject({ kind: "forgejo", job_handles: false, runner_list: false });
    expect(status.instances[0]!.targets.map((t) => t.idle)).toEqual([null, null]);
  });

  it("Forgejo 14: one search without labels; a job no target fits is reported", async () => {
    stack = await startStack({ forgejo: { version: "14.0.0" } });
    const { forgejo, dispatcher } = stack;
    const a = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const x = forgejo.addJob({ repo: "acme/app", runs_on: ["windows"] });
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "one dispatch" });
    expect(dispatcher.dispatches[0]!.key).toBe(`fj:job:${a.id}:0`);
    const searches = forgejo.callsTo("/runners/jobs", "GET");
    expect(searches.every((c) => c.query.labels === undefined)).toBe(true);
    const status = await waitFor(async () => {
      const s = await stack!.status();
      return s.instances[0]!.waiting_jobs.some((j) => j.id === x.id) ? s : undefined;
    });
    expect(status.instances[0]!.waiting_jobs.find((j) => j.id === x.id)).toMatchObject({
      target: null,
      state: "unmatched",
      reason: "no target matches [windows]",
    });
    const metrics = await stack.metrics.registry.getSingleMetricAsString("forgejo_nsc_waiting_jobs");
    expect(metrics).toContain('forgejo_nsc_waiting_jobs{forge="fj",target="none"} 1');
  });

  it("Forgejo 14 with an empty job list answered as JSON null", async () => {
    stack = await startStack({ forgejo: { version: "14.0.0" } });
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= 1, { what: "a pass" });
    const search = stack.forgejo.callsTo("/runners/jobs", "GET")[0]!;
    expect(search.status).toBe(200);
    // The fake answers an empty search the way Forgejo does: the JSON literal null.
    const raw = await fetch(`${stack.forgejo.url}/api/v1/admin/runners/jobs`, { headers: { authorization: `token ${FAKE_ADMIN_TOKEN}` } });
    expect(await raw.text()).toBe("null");
    const s = await stack.status();
    expect(s.instances[0]!.last_error).toBeNull();
    expect(s.instances[0]!.last_success_at).not.toBeNull();
    expect(s.instances[0]!.waiting_jobs).toEqual([]);
  });

  it("Gitea 1.25: its jobs API and runner shapes; idle runners count", async () => {
    stack = await startStack({
      forgejo: { kind: "gitea", version: "1.25.0" },
      instance: { targets: [{ name: "ubuntu", labels: ["ubuntu-latest"], min_idle: 1 }] },
    });
    const { forgejo, dispatcher } = stack;
    simulateRunners(forgejo, dispatcher);
    // min_idle 1: one warm runner, which connects and sits idle.
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "warm runner" });
    expect(dispatcher.dispatches[0]!.key).toMatch(/^fj:warm:ubuntu:[0-9a-f]{6}-0$/);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    // The idle warm runner polls again and takes it; the pool is topped up again.
    const warmUuid = forgejo.state.runners[0]!.uuid;
    forgejo.fetchTask(warmUuid);
    expect(forgejo.job(job.id)!.status).toBe("running");
    await waitFor(() => dispatcher.dispatches.length === 2, { what: "pool refilled" });
    expect(dispatcher.dispatches[1]!.key).toMatch(/^fj:warm:ubuntu:/);
    expect(forgejo.callsTo("/actions/jobs", "GET").length).toBeGreaterThan(0);
    // The new warm runner registers; the next pass counts it idle, the first one busy.
    const status = await waitFor(async () => {
      const s = await stack!.status();
      return s.instances[0]!.targets[0]!.idle === 1 ? s : undefined;
    });
    expect(status.instances[0]!.server).toMatchObject({ kind: "gitea", job_handles: false, runner_list: true });
    expect(status.instances[0]!.targets[0]).toMatchObject({ idle: 1, running: 1, in_flight: 2, min_idle: 1 });
    expect(dispatcher.dispatches).toHaveLength(2);
    expect(dispatchesPerJob(dispatcher).size).toBe(0);
  });

  it("Forgejo 10 gets a clear startup error while the other instances keep working", async () => {
    const old = await startFakeForgejo({ version: "10.0.0" });
    extra.push(old);
    stack = await startStack({
      forgejo: { version: "16.0.0" },
      instances: (url) => [instanceConfig(old.url, { name: "old" }), instanceConfig(url, { name: "new" })],
    });
    const job = stack.forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    await waitFor(() => stack!.dispatcher.createdForJob(job.id).length === 1, { what: "dispatch for the v16 job" });
    const status = await waitFor(async () => {
      const s = await stack!.status();
      return s.instances[0]!.startup_error ? s : undefined;
    });
    expect(status.instances[0]!.startup_error).toMatch(
      /^Forgejo 10\.0\.0 has no jobs API .*polling is impossible: upgrade Forgejo to 11 or newer/,
    );
    expect(status.instances[1]!.startup_error).toBeNull();
    expect(stack.dispatcher.dispatches.every((d) => d.key!.startsWith("new:"))).toBe(true);
    expect(stack.logs.text()).toContain("polling is impossible");
    // The misconfigured instance does not hold readiness hostage.
    const ready = await fetch(`${stack.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(old.callsTo("/runners/jobs")).toEqual([]);
  });

  it("several instances at once: each its own scope, server and keys", async () => {
    const gitea = await startFakeForgejo({ kind: "gitea", version: "1.25.0" });
    extra.push(gitea);
    stack = await startStack({
      forgejo: { version: "15.0.3", orgs: [{ name: "acme", owners: ["admin"] }] },
      instances: (url) => [
        instanceConfig(url, { name: "org", scope: { level: "organization", owner: "acme" } }),
        instanceConfig(gitea.url, {
          name: "gt",
          forgejo: { base_url: gitea.url, token: FAKE_ADMIN_TOKEN },
          scope: { level: "repository", owner: "acme", name: "web" },
          targets: [{ labels: ["ubuntu-latest"] }],
        }),
      ],
    });
    const j1 = stack.forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const j2 = gitea.addJob({ repo: "acme/web", runs_on: ["ubuntu-latest"] });
    await waitFor(() => stack!.dispatcher.dispatches.length === 2, { what: "one dispatch per instance" });
    const byKey = new Map(stack.dispatcher.dispatches.map((d) => [d.key, d.body]));
    expect(byKey.get(`org:job:${j1.id}:${j1.handle}`)).toMatchObject({
      scope: { level: "organization", owner: "acme" },
      labels: ["linux:host", "docker"],
    });
    expect(byKey.get(`gt:job:${j2.id}:0`)).toMatchObject({
      scope: { level: "repository", owner: "acme", name: "web" },
      labels: ["ubuntu-latest"],
    });
    expect(stack.forgejo.callsTo("/orgs/acme/actions/runners/jobs").length).toBeGreaterThan(0);
    expect(gitea.callsTo("/repos/acme/web/actions/jobs").length).toBeGreaterThan(0);
  });
});
