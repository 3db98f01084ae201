import type { Scope } from "../forgejo/scope.js";
import { scopeKey } from "../forgejo/scope.js";
import type { ActionRunJob, ActionRunner, ForgejoApi, ServerInfo } from "../forgejo/types.js";
import { describeServer } from "../forgejo/version.js";
import type { Clock } from "../shared/clock.js";
import { errorMessage } from "../shared/error-message.js";
import type { DispatcherClient } from "./dispatcher-client.js";
import { IN_FLIGHT_STATES } from "./dispatcher-types.js";
import type { DispatcherRunner } from "./dispatcher-types.js";
import { labelNames } from "./labels.js";

/** Why an instance cannot be polled at all, or undefined when it can. */
export function pollingImpossible(info: ServerInfo): string | undefined {
  if (info.jobsApi) return undefined;
  const server = describeServer(info);
  if (info.kind === "forgejo") {
    return (
      `${server} has no jobs API (GET …/actions/runners/jobs arrived in Forgejo 11), so the autoscaler cannot see waiting jobs ` +
      `and polling is impossible: upgrade Forgejo to 11 or newer (15 or newer pins each runner to its job), or ask the dispatcher ` +
      `for runners yourself with POST /api/v1/dispatch`
    );
  }
  if (info.workflowJobWebhook) return undefined; // webhooksOnly() says how it is served
  return `${server} has no jobs API (GET …/actions/jobs arrived in Gitea 1.25) and no workflow_job webhooks (1.24), so the autoscaler cannot see waiting jobs: upgrade Gitea to 1.25 or newer`;
}

/**
 * Why the server can only be served from webhooks, or undefined: Gitea 1.24 sends workflow_job
 * deliveries but has no jobs search (it arrived in 1.25), so there is nothing to poll.
 */
export function webhooksOnly(info: ServerInfo): string | undefined {
  if (info.jobsApi || !info.workflowJobWebhook) return undefined;
  return (
    `${describeServer(info)} has no jobs API (GET …/actions/jobs arrived in Gitea 1.25): runners are asked for from its ` +
    `workflow_job webhooks only (configure the webhook; a lost delivery is not repaired) and warm pools are not kept; upgrade to 1.25 to poll`
  );
}

/** Whether the server lists registered runners (Forgejo >= 15, Gitea >= 1.24). */
export function canListRunners(info: ServerInfo): boolean {
  return info.listRunnersApi ?? info.runnersApi;
}

export interface Observation {
  /** Taken just before the dispatcher was asked, so anything learned later is newer. */
  observedAt: number;
  inFlight: DispatcherRunner[];
  /** Waiting and running jobs; undefined when Forgejo could not be asked. */
  jobs?: ActionRunJob[] | undefined;
  jobsError?: string | undefined;
  /** Registered runners; undefined when unsupported or failed. */
  registered?: ActionRunner[] | undefined;
  registeredError?: string | undefined;
}

/**
 * Waiting and running jobs of a scope. Forgejo 14+ and Gitea answer every job in one call; Forgejo
 * 11–13 return nothing without `labels`, so each target's label names are asked for and the answers
 * merged (a job fitting no target is then invisible, which status says). A `null` list is [].
 */
export async function searchJobs(
  api: ForgejoApi,
  info: ServerInfo,
  scope: Scope,
  targetLabels: readonly (readonly string[])[],
): Promise<ActionRunJob[]> {
  if (info.jobsWithoutLabels) return (await api.searchJobs(scope)) ?? [];
  const sets = [...new Map(targetLabels.map((ls) => labelNames(ls)).map((ns) => [ns.join(","), ns])).values()];
  const byId = new Map<number, ActionRunJob>();
  for (const names of sets) {
    for (const j of (await api.searchJobs(scope, names)) ?? []) byId.set(j.id, j);
  }
  return [...byId.values()];
}

/**
 * One look at the world for an instance: the dispatcher's runners in flight first (so a runner it
 * reports cannot have been asked for after the jobs were read), then jobs and runners together.
 * Throws only when the dispatcher cannot be asked; Forgejo failures are reported in the result.
 */
export async function observe(opts: {
  api: ForgejoApi;
  info: ServerInfo;
  dispatcher: DispatcherClient;
  scope: Scope;
  targetLabels: readonly (readonly string[])[];
  now: Clock;
}): Promise<Observation> {
  const { api, info, scope } = opts;
  const observedAt = opts.now().getTime();
  const key = scopeKey(scope);
  const inFlight = (await opts.dispatcher.listRunners({ states: IN_FLIGHT_STATES, scopeKey: key })).filter(
    (r) => !r.scope_key || r.scope_key === key,
  );

  const [jobs, registered] = await Promise.allSettled([
    // Without a jobs API (Gitea 1.24) there is nothing to search: the caller serves webhook hints.
    info.jobsApi ? searchJobs(api, info, scope, opts.targetLabels) : Promise.resolve(undefined),
    canListRunners(info) ? api.listRunners(scope) : Promise.resolve(undefined),
  ]);
  const obs: Observation = { observedAt, inFlight };
  if (jobs.status === "fulfilled") obs.jobs = jobs.value ?? undefined;
  else obs.jobsError = errorMessage(jobs.reason);
  if (registered.status === "fulfilled") obs.registered = registered.value ?? undefined;
  else obs.registeredError = errorMessage(registered.reason);
  return obs;
}
