/**
 * The JSON of GET /api/v1/status on the autoscaler. Exported so the `forgejo-nsc status` CLI can
 * type its client from it. Times are ISO 8601 strings; ages in seconds.
 */
export interface AutoscalerStatus {
  instances: InstanceStatus[];
}

export type Mode = "polling" | "webhooks" | "resync";

export interface InstanceStatus {
  name: string;
  base_url: string;
  scope: string;
  /** null until GET /api/v1/version has answered. */
  server: { kind: "forgejo" | "gitea"; version: string; job_handles: boolean; runner_list: boolean } | null;
  mode: Mode;
  /** Why the mode was forced (Gitea 1.24: no jobs API, webhooks only), or null. */
  mode_reason: string | null;
  /** Set when the instance cannot be served at all (e.g. Forgejo <= 10); the others keep working. */
  startup_error: string | null;
  last_poll_at: string | null;
  last_success_at: string | null;
  last_error: { at: string; message: string } | null;
  next_poll_at: string | null;
  webhook: {
    configured: boolean;
    /** ok, pending, error, or not_configured (deliveries are still accepted at /webhook/<name>). */
    setup: "ok" | "pending" | "error" | "not_configured";
    message: string | null;
    last_delivery_at: string | null;
    last_delivery_event: string | null;
    workflow_job_seen: boolean;
  };
  targets: TargetStatus[];
  waiting_jobs: WaitingJobStatus[];
}

export interface TargetStatus {
  name: string;
  labels: string[];
  waiting: number;
  running: number;
  /** Idle registered runners; null when the server cannot list runners (Forgejo < 15). */
  idle: number | null;
  in_flight: number;
  min_idle: number;
  /** The schedule entry in force (index into min_idle_schedule), null for the base min_idle. */
  min_idle_period: number | null;
  max_runners: number | null;
  note: string | null;
}

export interface WaitingJobStatus {
  id: number;
  attempt: number | null;
  handle: string | null;
  runs_on: string[];
  target: string | null;
  state: string;
  /** Why it has no runner yet, or which runner is on its way. */
  reason: string;
}
