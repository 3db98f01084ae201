import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { dispatchesPerJob, simulateRunners, startStack } from "./harness.js";
import type { Stack } from "./harness.js";

let stack: Stack | undefined;
const own = closedAfterEach();

describe("dispatcher outages", () => {
  it("a job seen while the dispatcher is down gets exactly one runner once it is back", async () => {
    stack = own(await startStack({ forgejo: { version: "15.0.3" }, deps: { tuning: { pollIntervalMs: 100 } } }));
    const { forgejo, dispatcher } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 1, { what: "first pass" });
    await dispatcher.stop();
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const down = await waitFor(async () => {
      const s = (await stack!.status()).instances[0]!;
      return s.last_error?.message.includes("cannot reach the dispatcher") ? s : undefined;
    });
    expect(down.last_error!.message).toContain(`cannot reach the dispatcher at ${dispatcher.url}`);
    const failedPasses = r.passCount;
    await waitFor(() => r.passCount >= failedPasses + 2, { what: "passes keep trying", timeoutMs: 15_000 });

    await dispatcher.start();
    await waitFor(() => dispatcher.createdForJob(job.id).length === 1, { what: "dispatch after recovery", timeoutMs: 15_000 });
    const s = await waitFor(async () => {
      const x = (await stack!.status()).instances[0]!;
      return x.last_error === null ? x : undefined;
    });
    expect(s.last_success_at).not.toBeNull();
    const after = r.passCount;
    await waitFor(() => r.passCount >= after + 2, { what: "more passes" });
    expect(dispatchesPerJob(dispatcher)).toEqual(new Map([[job.id, 1]]));
  });

  it("5xx answers are retried with the same key; an answer lost on the way does not launch twice", async () => {
    stack = own(await startStack({ forgejo: { version: "15.0.3" } }));
    const { forgejo, dispatcher } = stack;
    // Attempts within one pass: a 503, then an answer cut off after the runner was created, then
    // the same key again — which the dispatcher recognises.
    dispatcher.failNext("/api/v1/dispatch", 503, 1);
    dispatcher.dropAnswerNext(1);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    await waitFor(() => dispatcher.posts().some((p) => p.status === 200), { what: "the retry answered as a duplicate", timeoutMs: 15_000 });
    const posts = dispatcher.posts();
    expect(posts.map((p) => p.status)).toEqual([503, -1, 200]);
    expect(new Set(posts.map((p) => p.idempotencyKey))).toEqual(new Set([`fj:job:${job.id}:${job.handle}`]));
    expect(dispatcher.dispatches).toHaveLength(1);
  });

  it("a launch that failed at the dispatcher is asked for again under the next generation of the key", async () => {
    stack = own(await startStack({ forgejo: { version: "15.0.3" }, deps: { tuning: { pollIntervalMs: 100 } } }));
    const { forgejo, dispatcher } = stack;
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "first runner" });
    dispatcher.setState(dispatcher.runners[0]!.name, "failed", "launch failed 3 times: capacity");
    await waitFor(() => dispatcher.dispatches.length === 2, { what: "second runner" });
    expect(dispatcher.dispatches.map((d) => d.key)).toEqual([`fj:job:${job.id}:${job.handle}`, `fj:job:${job.id}:${job.handle}:r1`]);
    // The next failure waits (backoff) and says so.
    dispatcher.setState(dispatcher.runners[1]!.name, "failed", "launch failed again");
    const s = await waitFor(async () => {
      const x = (await stack!.status()).instances[0]!;
      return x.waiting_jobs[0]?.state === "backoff" ? x : undefined;
    });
    expect(s.waiting_jobs[0]!.reason).toMatch(/^runner fake-runner-2-0 ended without taking this job; asking for another in 1[45]s$/);
    expect(dispatcher.dispatches).toHaveLength(2);
  });

  it("a refusal (403) is reported per job and not repeated every pass", async () => {
    stack = own(
      await startStack({
        forgejo: { version: "15.0.3" },
        dispatcher: { allowLabels: ["namespace-profile-linux-medium"] },
        deps: { tuning: { pollIntervalMs: 100 } },
      }),
    );
    const { forgejo, dispatcher } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    await waitFor(() => dispatcher.posts().length === 1, { what: "the refused request" });
    const passes = r.passCount;
    await waitFor(() => r.passCount >= passes + 3, { what: "more passes" });
    expect(dispatcher.posts()).toHaveLength(1);
    const s = (await stack.status()).instances[0]!;
    expect(s.waiting_jobs).toEqual([
      expect.objectContaining({
        id: job.id,
        state: "refused",
        reason: expect.stringMatching(
          /^dispatcher refused the request \(403\): labels linux:host,docker are not allowed .*namespace\.allow_labels/,
        ),
      }),
    ]);
  });
});

describe("Forgejo outages", () => {
  it("unreachable at start: detection retries in the background; ready only after a good pass", async () => {
    stack = own(await startStack({ forgejo: { version: "15.0.3" }, start: false }));
    const { forgejo, dispatcher } = stack;
    forgejo.failNext("/api/v1/version", 502, 4);
    stack.autoscaler.start();
    const notReady = await fetch(`${stack.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { problems: Record<string, string> }).problems.fj).toMatch(/no successful reconcile yet/);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    await waitFor(() => dispatcher.createdForJob(job.id).length === 1, { what: "dispatch after Forgejo answered", timeoutMs: 10_000 });
    expect(forgejo.callsTo("/api/v1/version").length).toBeGreaterThanOrEqual(5);
    await waitFor(async () => (await fetch(`${stack!.url}/readyz`)).status === 200, { what: "ready" });
    expect(stack.logs.text()).toContain("Forgejo is not reachable yet; retrying in the background");
  });

  it("a failing jobs search is reported and retried; nothing is asked for on partial truth", async () => {
    stack = own(await startStack({ forgejo: { version: "15.0.3" }, deps: { tuning: { pollIntervalMs: 100 } } }));
    const { forgejo, dispatcher } = stack;
    simulateRunners(forgejo, dispatcher);
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 1, { what: "first pass" });
    forgejo.failNext("/runners/jobs", 500, 3);
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const s = await waitFor(async () => {
      const x = (await stack!.status()).instances[0]!;
      return x.last_error?.message.startsWith("jobs:") ? x : undefined;
    });
    expect(s.last_error!.message).toMatch(/list waiting jobs/);
    await waitFor(() => forgejo.job(job.id)?.status === "running", { what: "job taken after recovery", timeoutMs: 10_000 });
    expect(dispatchesPerJob(dispatcher)).toEqual(new Map([[job.id, 1]]));
  });
});
