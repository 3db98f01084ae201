import { COUNTS_TOWARD_DEMAND_STATES, isOneOf } from "../api/states.js";
import type { ActionRunJob, ActionRunner } from "../forgejo/types.js";
import { capacityByTarget, isRunning, isWaiting } from "./capacity.js";
import type { TargetCapacity } from "./capacity.js";
import type { DispatcherRunner } from "./dispatcher-types.js";
import type { KeyRecord } from "./keys.js";
import { labelNames } from "./labels.js";
import { matchTarget, unmatchedReason } from "./match.js";
import { planTarget } from "./plan-target.js";
import type { PlanShared } from "./plan-target.js";
import type { Cancel } from "./warm-trim.js";

export type { Cancel };

export interface PlanTarget {
  name: string;
  labels: readonly string[];
  /** Effective min_idle at `now` (schedules already applied). */
  minIdle: number;
  maxRunners?: number | undefined;
  /** warm_idle_timeout: idle runners above the wanted size are stopped after this long (undefined: never). */
  warmIdleTimeoutMs?: number | undefined;
  /** warm_retire_before: idle runners with less TTL left are stopped and replaced (undefined: never). */
  warmRetireBeforeMs?: number | undefined;
}

export interface PlanInput {
  instance: string;
  now: number;
  /** When the dispatcher's runner list was read; it is read before the jobs. */
  observedAt: number;
  targets: readonly PlanTarget[];
  /** Waiting and running jobs (Forgejo's jobs search). */
  jobs: readonly ActionRunJob[];
  /** The server pins runners to jobs (Forgejo >= 15): each job with a handle gets its own runner. */
  handles: boolean;
  /** Registered runners; undefined when the server cannot list them or the list failed. */
  registered: readonly ActionRunner[] | undefined;
  /** The runner list is supported but could not be read: warm pools wait for the next pass. */
  registeredFailed?: boolean;
  /** This scope's runners at the dispatcher in pending, launching, running or finishing. */
  inFlight: readonly DispatcherRunner[];
  /** What the dispatcher said about each job's key, by base key. */
  book: ReadonlyMap<string, KeyRecord>;
  /** Warm-pool keys: a per-process prefix, the next sequence number, and keys still unanswered. */
  warm: { boot: string; nextSeq: number; outstanding: ReadonlyMap<string, readonly string[]> };
  /**
   * The behaviour before issue 13, kept so the simulator can compare against it: a pinned runner
   * for every waiting job even when a free runner will take it. The daemon never sets it.
   */
  pinEveryJob?: boolean | undefined;
  /**
   * `jobs` is Forgejo's whole list this pass (not webhook hints): a pinned runner still pending
   * for a job that is no longer waiting may be cancelled.
   */
  jobsComplete?: boolean | undefined;
}

export interface JobRef {
  id: number;
  attempt?: number | undefined;
  handle?: string | undefined;
}

/** One runner to ask the dispatcher for. */
export interface Intent {
  key: string;
  target: string;
  count: 1;
  kind: "job" | "warm";
  /** Pinned runners carry the job; the dispatcher passes its handle to forgejo-runner. */
  job?: JobRef | undefined;
  /** The job the key was derived from (pinned or not), and the key's base and generation. */
  forJob?: number | undefined;
  baseKey?: string | undefined;
  gen?: number | undefined;
}

export type JobState = "dispatch" | "in_flight" | "requested" | "covered" | "at_cap" | "backoff" | "refused" | "unmatched";

export interface JobPlan {
  id: number;
  attempt?: number | undefined;
  handle?: string | undefined;
  runs_on: string[];
  target: string | null;
  state: JobState;
  reason: string;
  key?: string | undefined;
}

export interface TargetPlan {
  name: string;
  labels: string[];
  waiting: number;
  running: number;
  /** Idle registered runners; null when the server cannot tell. */
  idle: number | null;
  inFlight: number;
  free: number;
  minIdle: number;
  maxRunners: number | null;
  jobIntents: number;
  warmIntents: number;
  /** Why the warm pool is not topped up, when it is short. */
  warmNote?: string | undefined;
}

export interface Plan {
  intents: Intent[];
  /** Idle runners to stop at the dispatcher (retired near their deadline, or surplus). */
  cancels: Cancel[];
  jobs: JobPlan[];
  targets: TargetPlan[];
  /** Warm keys this plan used beyond the outstanding ones (act advances its counter by this). */
  warmSeqUsed: number;
}

/** The waiting jobs, oldest first, each with its plan (covered or unmatched until a target's plan says more). */
function jobPlans(input: PlanInput): { jobs: JobPlan[]; jobPlanById: Map<number, JobPlan>; byTarget: Map<string, ActionRunJob[]> } {
  const waiting = [...new Map(input.jobs.filter(isWaiting).map((j) => [j.id, j])).values()].sort((a, b) => a.id - b.id);
  const byTarget = new Map<string, ActionRunJob[]>();
  const jobs: JobPlan[] = [];
  const jobPlanById = new Map<number, JobPlan>();
  for (const j of waiting) {
    const t = matchTarget(input.targets, j.runs_on);
    const jp: JobPlan = {
      id: j.id,
      attempt: j.attempt,
      handle: j.handle,
      runs_on: labelNames(j.runs_on ?? []),
      target: t?.name ?? null,
      state: t ? "covered" : "unmatched",
      reason: t ? "" : unmatchedReason(j.runs_on),
    };
    jobs.push(jp);
    jobPlanById.set(j.id, jp);
    if (t) byTarget.set(t.name, [...(byTarget.get(t.name) ?? []), j]);
  }
  return { jobs, jobPlanById, byTarget };
}

/**
 * Pure planning: from what Forgejo and the dispatcher say (and what the dispatcher answered for
 * earlier keys) to the runners to ask for, and for every waiting job the reason it has or lacks
 * one. Jobs are served oldest first; job runners come before warm-pool runners under max_runners.
 * Each target's plan (plan-target.ts) has three parts: pinned jobs, unpinned jobs, the warm pool.
 */
export function plan(input: PlanInput): Plan {
  const caps = capacityByTarget(input.targets, input.jobs, input.inFlight, input.registered);
  const liveNames = new Set(input.inFlight.filter((r) => isOneOf(COUNTS_TOWARD_DEMAND_STATES, r.state)).map((r) => r.name));
  const { jobs, jobPlanById, byTarget } = jobPlans(input);
  const shared: PlanShared = { input, liveNames, jobPlanById, intents: [], cancels: [], warmSeq: { used: 0 } };
  const targets = input.targets.map((t) => planTarget(shared, t, caps.get(t.name) as TargetCapacity, byTarget.get(t.name) ?? []));
  return { intents: shared.intents, cancels: shared.cancels, jobs, targets, warmSeqUsed: shared.warmSeq.used };
}

/** Running jobs are not planned for; exported for status counts. */
export { isRunning, isWaiting };
