import { monitorEventLoopDelay } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { FailingStore } from "../helpers/failing-store.js";
import { holdWriteLock } from "../helpers/sqlite-lock.js";
import { waitFor } from "../helpers/wait.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

// The state database stops accepting writes for a while, in the middle of launches. Nothing may be
// stranded: every runner ends up running its job and then done, with exactly one instance each,
// and none left afterwards. Meanwhile the API says 503 with Retry-After, and /readyz says why.

let h: Harness | undefined;
const own = closedAfterEach();

const scope = { level: "repository", owner: "acme", name: "app" };

async function dispatchJobs(h: Harness, n: number): Promise<{ names: string[]; jobs: number[] }> {
  const names: string[] = [];
  const jobs: number[] = [];
  for (let i = 0; i < n; i++) {
    const job = h.forgejo.addJob({ repo: "acme/app", runs_on: ["linux-x"] });
    const res = await h.request("POST", "/api/v1/dispatch", { labels: ["linux-x"], scope, job: { id: job.id, handle: job.handle } });
    expect(res.status).toBe(202);
    names.push(res.body.runners[0].name as string);
    jobs.push(job.id);
  }
  return { names, jobs };
}

async function allDone(h: Harness, names: string[], jobs: number[]): Promise<void> {
  await waitFor(() => jobs.every((id) => h.forgejo.job(id)?.status === "success"), { timeoutMs: 30_000, what: "every job to run" });
  await waitFor(async () => (await Promise.all(names.map((n) => h.store.getRunner(n)))).every((r) => r?.state === "done"), {
    timeoutMs: 30_000,
    what: "every runner done",
  });
}

describe("a state database that refuses writes during launches", () => {
  it("strands nothing: each runner reaches running, runs its job and is done; one instance each, none left", async () => {
    let failing!: FailingStore;
    h = own(
      await startHarness({
        forgejo: { repos: [{ owner: "acme", name: "app" }] },
        timers: true,
        knobs: { createDelayMs: 1_500 },
        customize: (deps) => ({ ...deps, store: (failing = new FailingStore(deps.store)) }),
      }),
    );
    const { names, jobs } = await dispatchJobs(h, 3);
    await waitFor(() => h!.nsc.calls("run").length === 3, { what: "three nsc run calls in progress" });
    failing.failWrites();

    // The API and readiness say what is wrong while writes fail; reads still answer.
    const refused = await h.request("POST", "/api/v1/dispatch", { labels: ["linux-x"], scope });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(refused.body).toEqual({ error: "state_unavailable", message: failing.message });
    const ready = await fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { problems: Record<string, string> }).problems.state).toBe(failing.message);
    expect((await h.request("GET", "/api/v1/runners")).status).toBe(200);

    // Every launch got its instance and was refused the write that records it.
    await waitFor(() => names.every((n) => failing.refused.some((c) => c.runner === n && c.to === "running")), {
      timeoutMs: 20_000,
      what: "each launch to try to record its running instance",
    });
    failing.heal();

    await allDone(h, names, jobs);
    expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
    expect(h.nsc.calls("run")).toHaveLength(3);
    const instances = h.nsc.instances({ includeDestroyed: true });
    expect(instances.map((i) => i.labels["forgejo-nsc.runner"]).sort()).toEqual([...names].sort());
    expect(h.nsc.instances()).toEqual([]);
    for (const n of names) {
      const r = (await h.store.getRunner(n))!;
      expect(r.history.map((t) => t.to)).toEqual(["pending", "launching", "running", "finishing", "done"]);
      expect(r.instanceId).toBe(instances.find((i) => i.labels["forgejo-nsc.runner"] === n)!.id);
    }
    expect(h.logs()).toMatch(
      /cannot record runner nscloud-\w+: -> running \(instance \w+\) yet; retrying until the state database accepts writes/,
    );
  });
});

describe("a write lock held by another process", () => {
  it("keeps the event loop and /healthz responsive; the runner completes once the lock is released", async () => {
    h = own(
      await startHarness({
        forgejo: { repos: [{ owner: "acme", name: "app" }] },
        timers: true,
        knobs: { createDelayMs: 1_000 },
        // A short lock wait, so that the launch's write gives up inside the store and is retried by the dispatcher.
        customize: (deps) => ({
          ...deps,
          store: openSqliteStore(deps.config.dispatcher.state_path, { busyTimeoutMs: 500, logger: deps.logger }),
        }),
      }),
    );
    const { names, jobs } = await dispatchJobs(h, 1);
    await waitFor(() => h!.nsc.calls("run").length === 1, { what: "nsc run in progress" });
    const lock = await holdWriteLock(h.config.dispatcher.state_path);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    try {
      await waitFor(() => loop.count > 3, { what: "event-loop samples" });
      // The instance comes up while the lock is held; the launch keeps trying to record it.
      await waitFor(() => h!.nsc.calls("run")[0]!.exitCode === 0, { timeoutMs: 20_000, what: "nsc run to finish" });
      await waitFor(() => h!.logs().includes("cannot record runner"), { timeoutMs: 20_000, what: "the launch to wait for the lock" });
      const health = await fetch(`${h.url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      expect(health.status).toBe(200);
      const ready = await fetch(`${h.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { problems: Record<string, string> }).problems.state).toMatch(
        /is locked by another process \(SQLITE_BUSY\)/,
      );
      expect(lock.released()).toBe(false);
      expect((await h.store.getRunner(names[0]!))!.state).toBe("launching");
    } finally {
      loop.disable();
      await lock.release();
    }
    // SQLite's own busy wait would have stood the loop still for 5 s per write.
    expect(loop.max / 1e6).toBeLessThan(500);
    await allDone(h, names, jobs);
    expect(h.nsc.calls("run")).toHaveLength(1);
    expect((await h.store.getRunner(names[0]!))!.history.map((t) => t.to)).toEqual([
      "pending",
      "launching",
      "running",
      "finishing",
      "done",
    ]);
  });
});

describe("the periodic pruning of finished records", () => {
  it("fails without taking the dispatcher down while the database refuses writes", async () => {
    h = own(
      await startHarness({
        timers: true,
        customize: (deps) => ({ ...deps, store: new FailingStore(deps.store, (c) => c.method === "pruneFinished") }),
      }),
    );
    // The first tick prunes; its failure is logged (an unhandled rejection would end the process).
    await waitFor(() => h!.logs().includes("pruning finished runner records failed"), { what: "the failed pruning to be logged" });
    const line = h
      .logs()
      .split("\n")
      .find((l) => l.includes("pruning finished runner records failed; it is tried again later"));
    expect(line).toContain("the disk is full");
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });
});
