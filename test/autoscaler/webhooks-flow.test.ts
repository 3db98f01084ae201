import { afterEach, describe, expect, it } from "vitest";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { waitFor } from "../helpers/wait.js";
import { WEBHOOK_SECRET, dispatchesPerJob, instanceConfig, simulateRunners, startStack } from "./harness.js";
import type { Stack } from "./harness.js";

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** Registers a webhook on the fake the way an operator (or ensureWebhook) would. */
async function addHook(forgejo: FakeForgejo, url: string, events: string[], repo = "acme/app"): Promise<number> {
  const res = await fetch(`${forgejo.url}/api/v1/repos/${repo}/hooks`, {
    method: "POST",
    headers: { authorization: `token ${FAKE_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ type: forgejo.kind, config: { url, content_type: "json", secret: WEBHOOK_SECRET }, events, active: true }),
  });
  if (res.status !== 201) throw new Error(`hook create answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: number }).id;
}

const gitea = (over: Record<string, unknown> = {}) => ({
  forgejo: { kind: "gitea" as const, version: "1.25.0", repos: [{ owner: "acme", name: "app" }] },
  instances: (url: string) => [
    instanceConfig(url, { name: "gt", webhook_secret: WEBHOOK_SECRET, targets: [{ labels: ["ubuntu-latest"] }], ...over }),
  ],
});

/**
 * Two more passes, then: every job of `expected` has exactly one accepted dispatch, under the
 * key the poller would use, and nothing else was dispatched.
 */
async function expectExactlyOneDispatchPerJob(s: Stack, expected: Map<number, string>): Promise<void> {
  const r = s.autoscaler.reconcilers[0]!;
  for (let i = 1; i <= 2; i++) {
    const passes = r.passCount;
    r.requestPass(0);
    await waitFor(() => r.passCount >= passes + 1, { what: `pass ${i} after the dispatch` });
  }
  expect(dispatchesPerJob(s.dispatcher)).toEqual(new Map([...expected.keys()].map((id) => [id, 1])));
  expect(s.dispatcher.dispatches.map((d) => d.key).sort()).toEqual([...expected.values()].sort());
}

describe("Gitea workflow_job: webhook + poll + replay → exactly one runner per job attempt", () => {
  it("dispatches at once on queued, with the poller's key, and never twice", async () => {
    // A slow poll so the dispatch can only have come from the delivery.
    stack = await startStack({ ...gitea({ poll_interval: "1h" }) });
    const { forgejo, dispatcher } = stack;
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= 1, { what: "first pass" });
    const hookId = await addHook(forgejo, `${stack.url}/webhook/gt`, ["workflow_job"]);

    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "dispatch from the delivery", timeoutMs: 3000 });
    await forgejo.settled();
    const queued = forgejo.deliveries.find((d) => d.event === "workflow_job");
    expect(queued?.status).toBe(202);
    const key = dispatcher.dispatches[0]!.key!;
    expect(key).toBe(`gt:job:${job.id}:${forgejo.job(job.id)!.attempt}`);

    // The same delivery again (Gitea's "redeliver"), twice, and polls in between.
    const payload = forgejo.payloads.workflowJob(job.id, "queued");
    const r = stack.autoscaler.reconcilers[0]!;
    const passes = r.passCount;
    for (let i = 0; i < 2; i++) {
      const d = await forgejo.deliver(hookId, "workflow_job", payload);
      expect(d.status).toBe(202);
    }
    // Requests during a pass coalesce into one more pass: wait for one, then ask for another.
    await waitFor(() => r.passCount >= passes + 1, { what: "the pass the replays caused" });
    r.requestPass(0);
    await waitFor(() => r.passCount >= passes + 2, { what: "one more pass" });
    expect(dispatchesPerJob(dispatcher)).toEqual(new Map([[job.id, 1]]));
    // Replays reached the dispatcher at most as duplicates of the same key, never as a new runner.
    expect(dispatcher.posts().every((p) => p.idempotencyKey === key)).toBe(true);
    expect(dispatcher.posts().filter((p) => p.status === 202)).toHaveLength(1);

    // Polling stopped once workflow_job deliveries arrived: the next look is a resync, 5 minutes out.
    const s = await waitFor(
      async () => {
        const x = (await stack!.status()).instances[0]!;
        return x.next_poll_at ? x : undefined;
      },
      { what: "no pass in progress" },
    );
    expect(s.mode).toBe("resync");
    expect(s.webhook.workflow_job_seen).toBe(true);
    expect(Date.parse(s.next_poll_at!) - Date.now()).toBeGreaterThan(4 * 60_000);
  });

  it("a completed job refills the warm pool; a replayed queued delivery for a finished job asks for nothing", async () => {
    stack = await startStack({ ...gitea({ targets: [{ labels: ["ubuntu-latest"], min_idle: 1 }] }) });
    const { forgejo, dispatcher } = stack;
    simulateRunners(forgejo, dispatcher);
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "warm runner" });
    const hookId = await addHook(forgejo, `${stack.url}/webhook/gt`, ["workflow_job"]);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    const queuedPayload = forgejo.payloads.workflowJob(job.id, "queued");
    // The warm runner takes it.
    forgejo.fetchTask(forgejo.state.runners[0]!.uuid);
    expect(forgejo.job(job.id)!.status).toBe("running");
    forgejo.finishJob(job.id);
    dispatcher.setState(dispatcher.runners[0]!.name, "done", "job finished");
    // "completed" arrives: the pool (now empty) is refilled at once.
    await waitFor(() => dispatcher.dispatches.length >= 2, { what: "warm pool refilled" });
    await forgejo.settled();
    expect(dispatcher.dispatches.slice(1).every((d) => d.key!.startsWith("gt:warm:"))).toBe(true);
    const count = dispatcher.dispatches.length;
    const r = stack.autoscaler.reconcilers[0]!;
    const passes = r.passCount;
    await forgejo.deliver(hookId, "workflow_job", queuedPayload);
    await waitFor(() => r.passCount >= passes + 1, { what: "the pass the replay caused" });
    r.requestPass(0);
    await waitFor(() => r.passCount >= passes + 2, { what: "one more pass" });
    expect(dispatcher.dispatches).toHaveLength(count);
    expect(dispatchesPerJob(dispatcher).get(job.id)).toBeUndefined();
  });

  it("a waiting (blocked) delivery asks for no runner: the job cannot run yet", async () => {
    stack = await startStack({ ...gitea({ poll_interval: "1h" }) });
    const { forgejo, dispatcher } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 1, { what: "first pass" });
    const hookId = await addHook(forgejo, `${stack.url}/webhook/gt`, ["workflow_job"]);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"], status: "blocked" });
    // With the jobs API down the delivery is all the autoscaler knows: it must still not dispatch.
    forgejo.failNext("/actions/jobs", 500, 3);
    const passes = r.passCount;
    const d = await forgejo.deliver(hookId, "workflow_job", forgejo.payloads.workflowJob(job.id, "waiting"));
    expect(d.status).toBe(202);
    await waitFor(() => r.passCount >= passes + 1, { what: "the pass the delivery caused" });
    expect(dispatcher.dispatches).toHaveLength(0);
    // Once it can run, Gitea says queued, and the job gets its runner.
    forgejo.unblockJob(job.id);
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "dispatch after unblocking" });
    await expectExactlyOneDispatchPerJob(stack, new Map([[job.id, `gt:job:${job.id}:${forgejo.job(job.id)!.attempt}`]]));
  });

  it("while Gitea's jobs API fails, a queued delivery alone still gets its runner", async () => {
    stack = await startStack({ ...gitea({ poll_interval: "1h" }) });
    const { forgejo, dispatcher } = stack;
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= 1, { what: "first pass" });
    await addHook(forgejo, `${stack.url}/webhook/gt`, ["workflow_job"]);
    forgejo.failNext("/actions/jobs", 500, 100);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "dispatch from the hint" });
    // Passes that still only have the hint ask under the same key: never a second runner.
    await expectExactlyOneDispatchPerJob(stack, new Map([[job.id, `gt:job:${job.id}:${forgejo.job(job.id)!.attempt}`]]));
    const s = (await stack.status()).instances[0]!;
    expect(s.last_error?.message).toMatch(/jobs:/);
    expect(s.waiting_jobs[0]!.reason).toMatch(/known from a webhook; Forgejo could not be asked/);
    // Not "processed" while Forgejo fails: keep polling.
    expect(s.mode).toBe("polling");
  });
});

describe("modes: polling → webhooks → resync", () => {
  it("resync_interval 0 restores the original: no timer at all once workflow_job arrives", async () => {
    stack = await startStack({ ...gitea({ resync_interval: "0" }) });
    const { forgejo } = stack;
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= 1, { what: "first pass" });
    expect((await stack.status()).instances[0]!.mode).toBe("polling");
    await addHook(forgejo, `${stack.url}/webhook/gt`, ["workflow_job"]);
    forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    const s = await waitFor(async () => {
      const x = (await stack!.status()).instances[0]!;
      return x.mode === "webhooks" ? x : undefined;
    });
    expect(s.next_poll_at).toBeNull();
  });

  it("after the switch, a resync finds a job whose delivery was lost", async () => {
    stack = await startStack({ ...gitea(), deps: { tuning: { resyncIntervalMs: 300 } } });
    const { forgejo, dispatcher } = stack;
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= 1, { what: "first pass" });
    const hookId = await addHook(forgejo, `${stack.url}/webhook/gt`, ["workflow_job"]);
    const first = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    await waitFor(async () => (await stack!.status()).instances[0]!.mode === "resync", { what: "resync mode" });
    // Deliveries stop reaching us (hook deleted): the next job is only found by the resync.
    await fetch(`${forgejo.url}/api/v1/repos/acme/app/hooks/${hookId}`, {
      method: "DELETE",
      headers: { authorization: `token ${FAKE_ADMIN_TOKEN}` },
    });
    const lost = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    const lostKey = `gt:job:${lost.id}:${forgejo.job(lost.id)!.attempt}`;
    await waitFor(() => dispatcher.dispatches.some((d) => d.key === lostKey), { what: "resync dispatch" });
    await expectExactlyOneDispatchPerJob(
      stack,
      new Map([
        [first.id, `gt:job:${first.id}:${forgejo.job(first.id)!.attempt}`],
        [lost.id, lostKey],
      ]),
    );
  });

  it("disable_polling starts in webhook mode (with resync); Forgejo ignores it and keeps polling", async () => {
    stack = await startStack({ ...gitea({ disable_polling: true }) });
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= 1, { what: "startup pass" });
    expect((await stack.status()).instances[0]!.mode).toBe("resync");
    await stack.close();

    stack = await startStack({
      forgejo: { version: "15.0.3" },
      instance: { disable_polling: true, webhook_secret: WEBHOOK_SECRET },
      deps: { tuning: { pollIntervalMs: 100 } },
    });
    const { forgejo } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 1, { what: "first pass" });
    expect(stack.logs.text()).toContain("disable_polling is ignored");
    // Forgejo deliveries (even one dressed as workflow_job) never stop the polling.
    await forgejo.deliver(
      `${stack.url}/webhook/fj`,
      "workflow_job",
      { action: "queued", workflow_job: { id: 999, labels: ["linux"], run_attempt: 1 } },
      { secret: WEBHOOK_SECRET },
    );
    await forgejo.deliver(`${stack.url}/webhook/fj`, "action_run_success", { action: "success", run: {} }, { secret: WEBHOOK_SECRET });
    const after = r.passCount;
    await waitFor(() => r.passCount >= after + 3, { what: "polling continues" });
    expect((await stack.status()).instances[0]!.mode).toBe("polling");
  });
});

describe("Gitea 1.24: workflow_job webhooks, no jobs search", () => {
  it("serves jobs from deliveries only, never polls the missing jobs API, and says so in status", async () => {
    stack = await startStack({
      forgejo: { kind: "gitea", version: "1.24.0", repos: [{ owner: "acme", name: "app" }] },
      instances: gitea().instances,
    });
    const { forgejo, dispatcher } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 1, { what: "first pass" });
    const s0 = (await stack.status()).instances[0]!;
    expect(s0.mode).toBe("webhooks");
    expect(s0.mode_reason).toMatch(
      /^Gitea 1\.24\.0 has no jobs API \(GET …\/actions\/jobs arrived in Gitea 1\.25\): runners are asked for from its workflow_job webhooks only/,
    );
    expect(s0.last_error).toBeNull();
    expect(s0.startup_error).toBeNull();

    await addHook(forgejo, `${stack.url}/webhook/gt`, ["workflow_job"]);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "dispatch from the delivery" });
    expect(dispatcher.dispatches[0]!.key).toBe(`gt:job:${job.id}:${forgejo.job(job.id)!.attempt}`);
    const passes = r.passCount;
    r.requestPass(0);
    await waitFor(() => r.passCount >= passes + 1, { what: "another pass" });
    expect(dispatchesPerJob(dispatcher)).toEqual(new Map([[job.id, 1]]));
    // Not one request to the search Gitea 1.24 does not have.
    expect(forgejo.callsTo("/actions/jobs")).toEqual([]);
  });
});
