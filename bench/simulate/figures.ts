import type { InstanceLife } from "./dispatcher.js";
import type { SimJob } from "./forge.js";

/** A wait; `atLeast` when a stranded job's wait was cut short by the end of the run. */
export interface Wait {
  ms: number;
  atLeast: boolean;
}

/** What one run comes to: the columns of the table. */
export interface Figures {
  jobs: number;
  p50: Wait;
  p95: Wait;
  max: Wait;
  /** Jobs that never got a runner by the end of the run. */
  stranded: number;
  /** Jobs whose instance reached its TTL while they ran (0 unless a TTL is too short). */
  killed: number;
  instances: number;
  /** Instances started that never ran a job. */
  unused: number;
  /** Why: a pinned runner found its job taken, an unpinned one reached its TTL, a scale-down stopped it, still up at the end. */
  unusedBy: { jobTaken: number; expired: number; retired: number; stillUp: number };
  /** Instance-minutes spent booted without a job (boot time itself is not counted). */
  idleMinutes: number;
}

/** Nearest-rank percentile of sorted waits. */
function percentile(sorted: readonly Wait[], q: number): Wait {
  if (sorted.length === 0) return { ms: 0, atLeast: false };
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as Wait;
}

export function figures(jobs: readonly SimJob[], instances: readonly InstanceLife[], end: number): Figures {
  const waits: Wait[] = jobs.map((j) =>
    j.startedAt !== undefined ? { ms: j.startedAt - j.arrival, atLeast: false } : { ms: end - j.arrival, atLeast: true },
  );
  waits.sort((a, b) => a.ms - b.ms);
  const ran = new Map<string, SimJob>();
  for (const j of jobs) if (j.runner !== undefined) ran.set(j.runner, j);
  let idleMs = 0;
  for (const i of instances) {
    if (i.readyAt === undefined || i.readyAt > end) continue;
    const until = Math.min(i.endedAt ?? end, end);
    const job = ran.get(i.runner);
    const busy = job?.startedAt !== undefined ? Math.min(job.endedAt ?? end, until) - job.startedAt : 0;
    idleMs += until - i.readyAt - busy;
  }
  const unused = instances.filter((i) => !ran.has(i.runner));
  return {
    jobs: jobs.length,
    p50: percentile(waits, 0.5),
    p95: percentile(waits, 0.95),
    max: percentile(waits, 1),
    stranded: jobs.filter((j) => j.startedAt === undefined).length,
    killed: jobs.filter((j) => j.status === "killed").length,
    instances: instances.length,
    unused: unused.length,
    unusedBy: {
      jobTaken: unused.filter((i) => i.endCause === "exited").length,
      expired: unused.filter((i) => i.endCause === "ttl").length,
      retired: unused.filter((i) => i.endCause === "retired").length,
      stillUp: unused.filter((i) => i.endCause === undefined).length,
    },
    idleMinutes: idleMs / 60_000,
  };
}
