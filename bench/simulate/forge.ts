import { coversAll } from "../../src/autoscaler/labels.js";
import type { ActionRunJob, ActionRunner } from "../../src/forgejo/types.js";
import type { EventQueue } from "./events.js";
import type { TraceJob } from "./trace.js";

/**
 * workflow_job deliveries (queued, in_progress, completed; per job, as Gitea and GitHub send them)
 * and Forgejo's per-run ones (push when a pushed run appears, run_completed for action_run_*
 * when its last job ends). Each policy listens to those its forge would send.
 */
export type DeliveryEvent = "queued" | "in_progress" | "completed" | "push" | "run_completed";

export const WORKFLOW_JOB_EVENTS: ReadonlySet<DeliveryEvent> = new Set(["queued", "in_progress", "completed"]);

export interface SimJob extends TraceJob {
  handle: string;
  status: "future" | "waiting" | "running" | "done" | "killed";
  startedAt?: number | undefined;
  endedAt?: number | undefined;
  runner?: string | undefined;
}

export interface Delivery {
  event: DeliveryEvent;
  job: SimJob;
}

export interface Pin {
  id: number;
  handle: string;
}

interface ForgeRunner {
  id: number;
  name: string;
  labels: readonly string[];
  pin?: Pin | undefined;
  status: "offline" | "idle" | "active";
  onlineAt?: number | undefined;
  job?: SimJob | undefined;
}

export interface ForgeListener {
  /** A runner process exited: its job is done, or it was pinned to a job somebody else took. */
  runnerExited(name: string): void;
  /** A webhook delivery reached the autoscaler. */
  delivered(d: Delivery): void;
}

export interface ForgeOptions {
  /** Probability that a delivery is lost. */
  loss: number;
  deliveryLatencyMs: number;
}

/**
 * An in-memory Forgejo ≥ 15: jobs wait with their labels; an idle runner whose labels cover a
 * job's takes the oldest such job at once; a runner pinned to a job (one-job --handle) takes that
 * job or, if it is gone, exits. Ephemeral registrations disappear when their job ends. Every job
 * change sends webhooks, each lost with the given probability.
 */
export class Forge {
  readonly jobs = new Map<number, SimJob>();
  private readonly runners = new Map<string, ForgeRunner>();
  /** Per run: jobs not yet ended, and whether the push delivery was sent. */
  private readonly runs = new Map<number, { open: number; announced: boolean }>();
  private nextRunnerId = 1;
  private listener: ForgeListener | undefined;

  constructor(
    private readonly q: EventQueue,
    private readonly opts: ForgeOptions,
    trace: readonly TraceJob[],
  ) {
    for (const t of trace) {
      const job: SimJob = { ...t, handle: `h-${t.id}`, status: "future" };
      this.jobs.set(t.id, job);
      const run = this.runs.get(t.run.id) ?? { open: 0, announced: false };
      run.open++;
      this.runs.set(t.run.id, run);
      q.at(t.arrival, () => this.arrive(job));
    }
  }

  listen(listener: ForgeListener): void {
    this.listener = listener;
  }

  /** GET …/actions/runners/jobs: waiting and running jobs, with Forgejo 15's attempt and handle. */
  jobList(): ActionRunJob[] {
    const out: ActionRunJob[] = [];
    for (const j of this.jobs.values()) {
      if (j.status === "waiting" || j.status === "running")
        out.push({ id: j.id, attempt: 1, handle: j.handle, runs_on: [...j.runsOn], status: j.status });
    }
    return out;
  }

  /** GET …/actions/runners. */
  runnerList(): ActionRunner[] {
    return [...this.runners.values()].map((r) => ({ id: r.id, name: r.name, status: r.status, labels: [...r.labels], ephemeral: true }));
  }

  /** The dispatcher registers a runner before its instance boots; it is offline until then. */
  register(name: string, labels: readonly string[], pin?: Pin): void {
    this.runners.set(name, { id: this.nextRunnerId++, name, labels, pin, status: "offline" });
  }

  /** The instance is up and forgejo-runner asks for work. */
  online(name: string): void {
    const r = this.runners.get(name);
    if (!r) return;
    r.status = "idle";
    r.onlineAt = this.q.now;
    if (r.pin) {
      const job = this.jobs.get(r.pin.id);
      if (job && job.status === "waiting" && job.handle === r.pin.handle) this.start(job, r);
      else this.exit(r);
      return;
    }
    const job = [...this.jobs.values()].find((j) => j.status === "waiting" && coversAll(r.labels, j.runsOn));
    if (job) this.start(job, r);
  }

  /** The runner is stopped from outside (TTL, scale-down). A job it was running is killed. */
  remove(name: string): void {
    const r = this.runners.get(name);
    if (!r) return;
    this.runners.delete(name);
    if (r.job && r.job.status === "running") {
      r.job.status = "killed";
      r.job.endedAt = this.q.now;
      this.jobEnded(r.job);
    }
  }

  /** Whether the runner is registered, online and has no job (a scale-down may stop it). */
  isIdle(name: string): boolean {
    return this.runners.get(name)?.status === "idle";
  }

  private arrive(job: SimJob): void {
    job.status = "waiting";
    this.deliver("queued", job, job.draws.queued);
    const run = this.runs.get(job.run.id);
    if (run && !run.announced) {
      run.announced = true;
      if (job.run.trigger === "push") this.deliver("push", job, job.run.draws.started);
    }
    const idle = [...this.runners.values()]
      .filter((r) => r.status === "idle" && !r.pin && coversAll(r.labels, job.runsOn))
      .sort((a, b) => (a.onlineAt ?? 0) - (b.onlineAt ?? 0));
    if (idle[0]) this.start(job, idle[0]);
  }

  private start(job: SimJob, r: ForgeRunner): void {
    job.status = "running";
    job.startedAt = this.q.now;
    job.runner = r.name;
    r.status = "active";
    r.job = job;
    this.deliver("in_progress", job, job.draws.started);
    this.q.after(job.durationMs, () => {
      if (job.status !== "running" || job.runner !== r.name) return;
      job.status = "done";
      job.endedAt = this.q.now;
      this.deliver("completed", job, job.draws.completed);
      this.jobEnded(job);
      this.exit(r);
    });
  }

  private jobEnded(job: SimJob): void {
    const run = this.runs.get(job.run.id);
    if (run && --run.open === 0) this.deliver("run_completed", job, job.run.draws.finished);
  }

  private exit(r: ForgeRunner): void {
    this.runners.delete(r.name);
    this.listener?.runnerExited(r.name);
  }

  private deliver(event: DeliveryEvent, job: SimJob, draw: number): void {
    if (draw < this.opts.loss) return;
    this.q.after(this.opts.deliveryLatencyMs, () => this.listener?.delivered({ event, job }));
  }
}
