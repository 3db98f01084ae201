import { afterEach, describe, expect, it } from "vitest";
import type { InstanceStatus } from "../../src/autoscaler/status.js";
import { storedHookEvents } from "../../src/forgejo/hook-events.js";
import { liveProcessesInGroup } from "../helpers/process-group.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { LABEL, UPSTREAM_API_TOKEN, startDaemons } from "./daemons.js";
import type { Daemons } from "./daemons.js";
import { GITEA_ADMIN, startGitea } from "./gitea-server.js";
import type { GiteaServer } from "./gitea-server.js";

/**
 * Real Gitea servers (built from their Go modules by scripts/upstream/build.ts), both daemons, and
 * the executing nsc stand-in. forgejo-runner itself cannot be built here (its module host is not
 * served by the Go module proxy: docs/upstream-e2e.md), so these suites follow a job up to the
 * runner's start inside the "instance" and assert every contract on the way against the real server.
 */
let gitea: GiteaServer | undefined;
let daemons: Daemons | undefined;
let tmp: { dir: string; cleanup: () => void } | undefined;
afterEach(async () => {
  await daemons?.stop();
  await gitea?.stop();
  tmp?.cleanup();
  daemons = undefined;
  gitea = undefined;
  tmp = undefined;
});

const WORKFLOW = `on: [push]
jobs:
  build:
    runs-on: ${LABEL}
    steps:
      - run: echo built by forgejo-nsc
`;

async function createRepo(g: GiteaServer, name: string): Promise<void> {
  const r = await g.api("POST", "/user/repos", { name, auto_init: true, default_branch: "main" });
  expect(r.status, r.text).toBe(201);
}

async function pushWorkflow(g: GiteaServer, repo: string): Promise<void> {
  const r = await g.api("POST", `/repos/${GITEA_ADMIN}/${repo}/contents/.gitea/workflows/ci.yml`, {
    content: Buffer.from(WORKFLOW).toString("base64"),
    message: "ci: add a workflow on the forgejo-nsc label",
  });
  expect(r.status, r.text).toBe(201);
}

async function status(d: Daemons): Promise<InstanceStatus> {
  return d.autoscaler.reconcilers[0]!.status();
}

/** Waits until the runner (default: the first) is finished, its instance gone and none of its processes left. */
async function expectCleanEnd(d: Daemons, name?: string): Promise<void> {
  const runnerName = name ?? (await d.store.listRunners({}))[0]!.name;
  const finished = await waitFor(
    async () => {
      const r = (await d.store.getRunner(runnerName))!;
      return ["done", "failed"].includes(r.state) ? r : undefined;
    },
    { what: `runner ${runnerName} to finish`, timeoutMs: 60_000 },
  );
  const instances = d.nsc.instances({ includeDestroyed: true }).filter((i) => i.labels?.["forgejo-nsc.runner"] === runnerName);
  expect(instances.map((i) => i.id)).toEqual([finished.instanceId]);
  await waitFor(() => instances.every((i) => i.destroyed_at), { what: `the instance of ${runnerName} to be gone` });
  for (const i of instances) expect(liveProcessesInGroup(i.container!.pid!), `processes of instance ${i.id}`).toEqual([]);
}

describe("Gitea 1.25.5 (real): workflow_job webhook → autoscaler → dispatcher → instance", () => {
  it("Gitea's own signed delivery launches one runner with a registration token Gitea issued for the repository", async () => {
    tmp = tempDir("fnsc-up-gitea125-");
    gitea = await startGitea("1.25.5", `${tmp.dir}/gitea`);
    expect(gitea.version).toBe("1.25.5");
    await createRepo(gitea, "app");
    daemons = await startDaemons({
      dir: tmp.dir,
      forge: { url: gitea.url, token: gitea.token },
      scope: { level: "repository", owner: GITEA_ADMIN, name: "app" },
      webhooks: true,
    });
    const d = daemons;

    // The autoscaler created its hook in the real Gitea; what Gitea stored is what it compares.
    const hook = await waitFor(
      async () => {
        const hooks = (await gitea!.api("GET", `/repos/${GITEA_ADMIN}/app/hooks`)).json as {
          id: number;
          config: { url: string };
          events: string[];
        }[];
        // The product marks its hook URL with a #fragment (a secret fingerprint) that Gitea keeps and drops when delivering.
        return hooks.find((h) => h.config.url.split("#")[0] === `${d.autoscalerUrl}/webhook/forge`);
      },
      { what: "the autoscaler's hook in Gitea", timeoutMs: 20_000 },
    );
    expect(hook.events).toEqual(["workflow_job"]);
    await waitFor(async () => (await status(d)).webhook.setup === "ok", { what: "webhook setup ok" });
    expect((await status(d)).mode).toBe("webhooks");

    await pushWorkflow(gitea, "app");
    // Gitea's jobs search shows the job; the runner request came from its webhook (polling is off).
    const job = await waitFor(
      async () => {
        const r = (await gitea!.api("GET", `/repos/${GITEA_ADMIN}/app/actions/jobs`)).json as {
          jobs: { id: number; status: string; labels: string[]; run_attempt: number }[];
        };
        return r.jobs[0];
      },
      { what: "the job in Gitea" },
    );
    expect(job).toMatchObject({ status: "queued", labels: [LABEL] });
    const runner = await waitFor(async () => (await d.store.listRunners({}))[0], {
      what: "a dispatch from the delivery",
      timeoutMs: 30_000,
    });
    const s = await status(d);
    expect(s.webhook.workflow_job_seen).toBe(true);
    expect(s.webhook.last_delivery_event).toMatch(/^workflow_job\./);
    const dispatch = await d.store.getDispatch(runner.dispatchId);
    expect(dispatch?.idempotencyKey).toBe(`forge:job:${job.id}:${job.run_attempt}`);
    expect(runner).toMatchObject({ labels: [LABEL], scope: { level: "repository", owner: GITEA_ADMIN, name: "app" } });

    // The instance got the registration token Gitea issues for this repository right now.
    // Destroyed ones too: the instance ends with the bootstrap's `forgejo-runner register` and may be gone already.
    const instance = await waitFor(
      () => d.nsc.instances({ includeDestroyed: true }).find((i) => i.labels?.["forgejo-nsc.runner"] === runner.name),
      { what: `the instance of ${runner.name}` },
    );
    const current = (await gitea.api("GET", `/repos/${GITEA_ADMIN}/app/actions/runners/registration-token`)).json as { token: string };
    expect(instance.env?.FORGEJO_RUNNER_TOKEN).toBe(current.token);
    expect(instance.image).toBe("code.forgejo.org/forgejo/runner:12.13.2");
    expect((await d.store.getRunner(runner.name))!.registration).toBe("token");

    // No real forgejo-runner here: the bootstrap stops at `forgejo-runner register`, the instance
    // ends with it, and the dispatcher cleans up. The job stays queued in Gitea (nothing ran it).
    await expectCleanEnd(d);
    const after = (await gitea.api("GET", `/repos/${GITEA_ADMIN}/app/actions/jobs`)).json as { jobs: { status: string }[] };
    expect(after.jobs[0]!.status).toBe("queued");
    expect(d.logs()).not.toContain(UPSTREAM_API_TOKEN);

    // What Gitea stores for expanded event names is what ensureWebhook compares against.
    const requested = ["push", "pull_request", "issues"];
    const created = await gitea.api("POST", `/repos/${GITEA_ADMIN}/app/hooks`, {
      type: "gitea",
      config: { url: "http://127.0.0.1:9/other", content_type: "json" },
      events: requested,
      active: true,
    });
    expect(created.status, created.text).toBe(201);
    expect([...(created.json as { events: string[] }).events].sort()).toEqual(storedHookEvents("gitea", requested).sort());
  });
});

describe("Gitea 1.25.5 (real), polling: the jobs search is read as Gitea answers it", () => {
  it("finds the queued job by polling alone; a runner that ended without it is followed by exactly one of the next key generation", async () => {
    tmp = tempDir("fnsc-up-gitea125p-");
    gitea = await startGitea("1.25.5", `${tmp.dir}/gitea`);
    await createRepo(gitea, "app");
    daemons = await startDaemons({
      dir: tmp.dir,
      forge: { url: gitea.url, token: gitea.token },
      scope: { level: "repository", owner: GITEA_ADMIN, name: "app" },
      webhooks: false,
    });
    const d = daemons;
    await pushWorkflow(gitea, "app");
    const job = await waitFor(
      async () => {
        const r = (await gitea!.api("GET", `/repos/${GITEA_ADMIN}/app/actions/jobs`)).json as {
          jobs: { id: number; run_attempt: number }[];
        };
        return r.jobs[0];
      },
      { what: "the job in Gitea" },
    );
    const runner = await waitFor(async () => (await d.store.listRunners({}))[0], { what: "a dispatch from polling", timeoutMs: 30_000 });
    const s = await status(d);
    expect(s.mode).toBe("polling");
    expect(s.webhook.last_delivery_at).toBeNull();
    expect((await d.store.getDispatch(runner.dispatchId))?.idempotencyKey).toBe(`forge:job:${job.id}:${job.run_attempt}`);
    // No forgejo-runner here, so the runner ends without taking the job; Gitea still shows it queued.
    // The autoscaler does not leave it stranded: it asks again with the next generation of the key
    // (keys.ts: ":r1"), once, and says why in its status.
    await expectCleanEnd(d, runner.name);
    const second = await waitFor(async () => (await d.store.listRunners({})).find((x) => x.name !== runner.name), {
      what: "the next generation",
      timeoutMs: 30_000,
    });
    expect((await d.store.getDispatch(second.dispatchId))?.idempotencyKey).toBe(`forge:job:${job.id}:${job.run_attempt}:r1`);
    const r = d.autoscaler.reconcilers[0]!;
    const passes = r.passCount;
    await waitFor(() => r.passCount >= passes + 2, { what: "two more passes", timeoutMs: 20_000 });
    const keys = await Promise.all(
      (await d.store.listRunners({})).map(async (x) => (await d.store.getDispatch(x.dispatchId))?.idempotencyKey),
    );
    // One runner per generation, never two for the same one.
    expect(new Set(keys).size).toBe(keys.length);
    await expectCleanEnd(d, second.name);
  });
});

describe("Gitea 1.24.6 (real): no jobs search, webhooks only", () => {
  it("answers 404 on /actions/jobs; the autoscaler never polls it and launches from the workflow_job delivery", async () => {
    tmp = tempDir("fnsc-up-gitea124-");
    gitea = await startGitea("1.24.6", `${tmp.dir}/gitea`);
    expect(gitea.version).toBe("1.24.6");
    await createRepo(gitea, "app");
    // The contract fact itself, from the real server.
    expect((await gitea.api("GET", `/repos/${GITEA_ADMIN}/app/actions/jobs`)).status).toBe(404);

    daemons = await startDaemons({
      dir: tmp.dir,
      forge: { url: gitea.url, token: gitea.token },
      scope: { level: "repository", owner: GITEA_ADMIN, name: "app" },
      webhooks: true,
    });
    const d = daemons;
    await waitFor(async () => (await status(d)).webhook.setup === "ok", { what: "webhook setup ok", timeoutMs: 20_000 });
    const s0 = await status(d);
    expect(s0.mode).toBe("webhooks");
    expect(s0.mode_reason).toMatch(/^Gitea 1\.24\.6 has no jobs API/);

    await pushWorkflow(gitea, "app");
    const runner = await waitFor(async () => (await d.store.listRunners({}))[0], {
      what: "a dispatch from the delivery",
      timeoutMs: 30_000,
    });
    expect(runner.labels).toEqual([LABEL]);
    const s1 = await status(d);
    expect(s1.last_error).toBeNull();
    expect(s1.webhook.workflow_job_seen).toBe(true);
    await expectCleanEnd(d);
  });
});
