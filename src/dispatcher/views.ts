import type { DispatchView, RunnerView } from "../api/runner-view.js";
import { scopeKey } from "../forgejo/scope.js";
import type { DispatchRecord, RunnerRecord } from "../store/types.js";
import { formatDuration } from "../config/duration.js";

/** The public JSON of a runner (src/api/runner-view.ts): never env values, tokens or anything secret. */
export function runnerView(r: RunnerRecord, opts: { history?: boolean } = {}): RunnerView {
  return {
    name: r.name,
    dispatch_id: r.dispatchId,
    state: r.state,
    reason: r.reason,
    platform: r.platform,
    labels: r.labels,
    scope: r.scope,
    scope_key: scopeKey(r.scope),
    job: r.job ? { id: r.job.id, attempt: r.job.attempt ?? null, handle: r.job.handle ?? null } : null,
    machine_type: r.machineType,
    image: r.platform === "linux" ? r.image : null,
    ttl: formatDuration(r.ttlMs),
    env_keys: Object.keys(r.env).sort(),
    instance_id: r.instanceId ?? null,
    forgejo_runner_id: r.forgejoRunnerId ?? null,
    registration: r.registration ?? null,
    launch_attempts: r.launchAttempts,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    launched_at: r.launchedAt ?? null,
    expires_at: r.expiresAt ?? null,
    finished_at: r.finishedAt ?? null,
    ...(opts.history ? { history: r.history } : {}),
  };
}

export function dispatchView(d: DispatchRecord, runners: RunnerRecord[]): DispatchView {
  return {
    dispatch_id: d.id,
    idempotency_key: d.idempotencyKey ?? null,
    created_at: d.createdAt,
    status_url: `/api/v1/dispatches/${d.id}`,
    runners: runners.map((r) => ({
      name: r.name,
      state: r.state,
      reason: r.reason,
      instance_id: r.instanceId ?? null,
      status_url: `/api/v1/runners/${r.name}`,
    })),
  };
}
