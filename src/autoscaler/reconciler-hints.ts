import type { ActionRunJob } from "../forgejo/types.js";
import type { Observation } from "./observe.js";

/** Gitea workflow_job payload fields the autoscaler reads. */
export interface WorkflowJobEvent {
  action: string;
  id: number;
  attempt?: number | undefined;
  labels: string[];
}

/**
 * Jobs announced by Gitea workflow_job "queued" deliveries. A pass plans with them when the jobs
 * cannot be polled (Gitea 1.24: webhooks only) or Forgejo is away; a successful observation
 * replaces every hint it is newer than. Hints older than `keepMs` are forgotten.
 */
export class WebhookHints {
  private readonly hints = new Map<number, { job: ActionRunJob; at: number }>();

  constructor(private readonly keepMs: number) {}

  /** A queued job, announced at `at` (ms). */
  add(e: WorkflowJobEvent, at: number): void {
    this.hints.set(e.id, { job: { id: e.id, attempt: e.attempt, runs_on: e.labels, status: "waiting" }, at });
  }

  /** The job is no longer waiting (in_progress, completed, …). */
  delete(id: number): void {
    this.hints.delete(id);
  }

  /**
   * The jobs a pass started at `at` plans with, or undefined when there are none to go on: the
   * observed jobs when Forgejo answered; otherwise what webhooks told us. `onlyWebhooks`: the
   * server has no jobs API, the hints are all there is (even none).
   */
  jobsFor(obs: Observation, onlyWebhooks: boolean, at: number): ActionRunJob[] | undefined {
    if (!onlyWebhooks && obs.jobs) {
      for (const [id, h] of this.hints) if (h.at <= obs.observedAt) this.hints.delete(id);
      return obs.jobs;
    }
    for (const [id, h] of this.hints) if (at - h.at >= this.keepMs) this.hints.delete(id);
    const hinted = [...this.hints.values()].map((h) => h.job);
    return onlyWebhooks || hinted.length > 0 ? hinted : undefined;
  }
}
