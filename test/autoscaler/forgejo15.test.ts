import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { dispatchesPerJob, simulateRunners, startStack } from "./harness.js";
import type { Stack } from "./harness.js";

let stack: Stack | undefined;
const own = closedAfterEach();

describe("Forgejo 15: one pinned runner per waiting job", () => {
  it("asks the dispatcher once per job, with the job's handle, and the runners take exactly their jobs", async () => {
    stack = own(await startStack({ forgejo: { version: "15.0.3" } }));
    const { forgejo, dispatcher } = stack;
    simulateRunners(forgejo, dispatcher);
    const a = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const firstHandle = a.handle;
    const b = forgejo.addJob({ repo: "acme/app", runs_on: ["docker", "linux"] });
    const unmatched = forgejo.addJob({ repo: "acme/app", runs_on: ["gpu"] });

    await waitFor(() => forgejo.job(a.id)?.status === "running" && forgejo.job(b.id)?.status === "running", { what: "both jobs taken" });
    const sent = dispatcher.dispatches.map((d) => ({ key: d.key, body: d.body }));
    expect(sent).toEqual(
      expect.arrayContaining([
        {
          key: `fj:job:${a.id}:${firstHandle}`,
          body: {
            count: 1,
            labels: ["linux:host", "docker"],
            scope: { level: "instance" },
            job: { id: a.id, attempt: 0, handle: firstHandle },
          },
        },
        {
          key: `fj:job:${b.id}:${b.handle}`,
          body: {
            count: 1,
            labels: ["linux:host", "docker"],
            scope: { level: "instance" },
            job: { id: b.id, attempt: 0, handle: b.handle },
          },
        },
      ]),
    );
    // Each runner took the job it was pinned to.
    const runnerOf = (jobId: number) => forgejo.state.runners.find((r) => r.id === forgejo.job(jobId)?.runnerId)?.name;
    expect(runnerOf(a.id)).toBe(dispatcher.createdForJob(a.id)[0]!.runners[0]);
    expect(runnerOf(b.id)).toBe(dispatcher.createdForJob(b.id)[0]!.runners[0]);
    // Every request carried the dispatcher token.
    expect(dispatcher.requests.every((r) => r.auth === "ok")).toBe(true);

    // Several more passes: still exactly one dispatch per job, none for the job no target fits.
    const passes = stack.autoscaler.reconcilers[0]!.passCount;
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= passes + 2, { what: "two more passes" });
    expect(dispatchesPerJob(dispatcher)).toEqual(
      new Map([
        [a.id, 1],
        [b.id, 1],
      ]),
    );
    const status = await stack.status();
    const inst = status.instances[0]!;
    expect(inst).toMatchObject({
      name: "fj",
      mode: "polling",
      server: { kind: "forgejo", job_handles: true, runner_list: true },
      startup_error: null,
      last_error: null,
    });
    expect(inst.waiting_jobs).toEqual([
      {
        id: unmatched.id,
        attempt: 0,
        handle: unmatched.handle,
        runs_on: ["gpu"],
        target: null,
        state: "unmatched",
        reason: "no target matches [gpu]",
      },
    ]);
    expect(inst.targets[0]).toMatchObject({ name: "linux", waiting: 0, running: 2, in_flight: 2, idle: 0, min_idle: 0, max_runners: null });

    // The jobs finish: ephemeral runners are gone, the dispatcher's runners end.
    for (const j of [a, b]) forgejo.finishJob(j.id);
    for (const r of dispatcher.runners) dispatcher.setState(r.name, "done", "job finished");
    const rerun = forgejo.rerunJob(a.id);
    await waitFor(() => forgejo.job(rerun.id)?.status === "running", { what: "the rerun taken" });
    // A rerun is a new attempt with a new handle: a new key, one more runner.
    expect(dispatchesPerJob(dispatcher).get(a.id)).toBe(2);
    const newHandle = forgejo.job(a.id)!.handle;
    expect(newHandle).not.toBe(firstHandle);
    expect(dispatcher.dispatches.at(-1)!.key).toBe(`fj:job:${a.id}:${newHandle}`);
  });

  it("a push webhook makes the next look happen at once instead of after poll_interval", async () => {
    stack = own(
      await startStack({
        forgejo: { version: "15.0.3" },
        instance: { poll_interval: "1h" },
      }),
    );
    const { forgejo, dispatcher } = stack;
    await waitFor(() => stack!.autoscaler.reconcilers[0]!.passCount >= 1, { what: "first pass" });
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const res = await fetch(`${stack.url}/webhook/fj`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forgejo-event": "push" },
      body: JSON.stringify({ ref: "refs/heads/main" }),
    });
    expect(res.status).toBe(202);
    await waitFor(() => dispatcher.createdForJob(job.id).length === 1, { what: "runner for the pushed job", timeoutMs: 3000 });
  });
});
