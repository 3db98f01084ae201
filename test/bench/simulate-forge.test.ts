import { describe, expect, it } from "vitest";
import { LINUX_LARGE, LINUX_SMALL } from "../../bench/simulate/deployment.js";
import { EventQueue } from "../../bench/simulate/events.js";
import type { Delivery } from "../../bench/simulate/forge.js";
import { Forge } from "../../bench/simulate/forge.js";
import type { TraceJob } from "../../bench/simulate/trace.js";

const run = { id: 1, trigger: "push" as const, draws: { started: 0.5, finished: 0.5 } };
const job = (id: number, arrival: number, label: string): TraceJob => ({
  id,
  arrival,
  runsOn: [label],
  durationMs: 60_000,
  run,
  draws: { queued: 0.5, started: 0.5, completed: 0.5 },
});

function world(jobs: TraceJob[], loss = 0) {
  const q = new EventQueue(0);
  const forge = new Forge(q, { loss, deliveryLatencyMs: 100 }, jobs);
  const exited: string[] = [];
  const delivered: Delivery[] = [];
  forge.listen({ runnerExited: (n) => exited.push(n), delivered: (d) => delivered.push(d) });
  return { q, forge, exited, delivered };
}

describe("simulated forge", () => {
  it("an idle runner takes the oldest waiting job its labels cover", async () => {
    const w = world([job(1, 0, LINUX_LARGE), job(2, 1, LINUX_SMALL), job(3, 2, LINUX_SMALL)]);
    await w.q.runUntil(10);
    w.forge.register("r", [LINUX_SMALL]);
    w.forge.online("r");
    expect(w.forge.jobs.get(2)?.runner).toBe("r");
    expect(w.forge.jobs.get(1)?.status).toBe("waiting");
  });

  it("a pinned runner takes only its own job, and exits when that job was taken", async () => {
    const w = world([job(1, 0, LINUX_SMALL), job(2, 0, LINUX_SMALL)]);
    await w.q.runUntil(10);
    w.forge.register("pinned-2", [LINUX_SMALL], { id: 2, handle: "h-2" });
    w.forge.online("pinned-2");
    expect([w.forge.jobs.get(1)?.status, w.forge.jobs.get(2)?.runner]).toEqual(["waiting", "pinned-2"]);
    w.forge.register("late", [LINUX_SMALL], { id: 2, handle: "h-2" });
    w.forge.online("late");
    expect(w.exited).toEqual(["late"]);
  });

  it("a job arriving while a runner idles starts at once; its runner exits when it ends", async () => {
    const w = world([job(1, 5_000, LINUX_SMALL)]);
    w.forge.register("warm", [LINUX_SMALL]);
    w.forge.online("warm");
    await w.q.runUntil(5_000);
    expect(w.forge.jobs.get(1)?.startedAt).toBe(5_000);
    await w.q.runUntil(65_000);
    expect([w.forge.jobs.get(1)?.status, w.exited]).toEqual(["done", ["warm"]]);
  });

  it("sends workflow_job deliveries per job and push / run_completed per run, dropping those whose draw is below the loss", async () => {
    const kept = world([job(1, 0, LINUX_SMALL)], 0.4);
    kept.forge.register("r", [LINUX_SMALL]);
    kept.forge.online("r");
    await kept.q.runUntil(120_000);
    expect(kept.delivered.map((d) => d.event)).toEqual(["queued", "push", "in_progress", "completed", "run_completed"]);
    const lost = world([job(1, 0, LINUX_SMALL)], 0.6);
    await lost.q.runUntil(120_000);
    expect(lost.delivered).toEqual([]);
  });
});
