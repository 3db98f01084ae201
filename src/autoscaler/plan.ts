import type { ActionRunJob, ActionRunner } from "../forgejo/types.js";
import { LIVE_STATES, capacityByTarget, isRunning, isWaiting } from "./capacity.js";
import type { DispatcherRunner } from "./dispatcher-types.js";
import { REJECTED_RETRY_MS, generationDelayMs, jobBaseKey, warmKey, withGeneration } from "./keys.js";
import type { KeyRecord } from "./keys.js";
import { labelNames } from "./labels.js";
import { matchTarget, unmatchedReason } from "./match.js";
import { stalePinned, trimWarm } from "./warm-trim.js";
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

const secs = (ms: number) => `${Math.max(0, Math.round(ms / 1000))}s`;

function ageOf(r: DispatcherRunner, now: number): string {
  const t = Date.parse(r.updated_at ?? r.created_at ?? "");
  return Number.isFinite(t) ? ` since ${secs(now - t)}` : "";
}

function describeRunner(r: DispatcherRunner, now: number): string {
  return `runner ${r.name} ${r.state}${ageOf(r, now)}`;
}

/** Decision for a job's key from the book: dispatch generation `gen`, or wait with a reason. */
type KeyDecision = { dispatch: true; gen: number; note?: string } | { dispatch: false; state: JobState; reason: string };

function decideKey(rec: KeyRecord | undefined, liveNames: ReadonlySet<string>, input: PlanInput): KeyDecision {
  if (!rec) return { dispatch: true, gen: 0 };
  switch (rec.status) {
    case "error":
      return { dispatch: true, gen: rec.gen, note: `retrying after: ${rec.message ?? "dispatcher error"}` };
    case "rejected": {
      const wait = rec.at + REJECTED_RETRY_MS - input.now;
      if (wait > 0) return { dispatch: false, state: "refused", reason: `${rec.message ?? "dispatcher refused the request"}; asking again in ${secs(wait)}` };
      return { dispatch: true, gen: rec.gen };
    }
    default: {
      const alive = rec.runners.filter((n) => liveNames.has(n));
      if (alive.length > 0) return { dispatch: false, state: "in_flight", reason: `runner ${alive.join(", ")} on its way` };
      if (rec.at >= input.observedAt) {
        // Learned after this pass looked at the dispatcher: the runner may well be fine.
        return { dispatch: false, state: "requested", reason: "runner requested; waiting for the dispatcher to report it" };
      }
      const next = rec.gen + 1;
      const wait = rec.at + generationDelayMs(next) - input.now;
      const who = rec.runners.length ? `runner ${rec.runners.join(", ")}` : "the previous runner";
      if (wait > 0) return { dispatch: false, state: "backoff", reason: `${who} ended without taking this job; asking for another in ${secs(wait)}` };
      return { dispatch: true, gen: next, note: `${who} ended without taking this job` };
    }
  }
}

/**
 * Pure planning: from what Forgejo and the dispatcher say (and what the dispatcher answered for
 * earlier keys) to the runners to ask for, and for every waiting job the reason it has or lacks
 * one. Jobs are served oldest first; job runners come before warm-pool runners under max_runners.
 */
export function plan(input: PlanInput): Plan {
  const { targets, now } = input;
  const caps = capacityByTarget(targets, input.jobs, input.inFlight, input.registered);
  const liveNames = new Set(input.inFlight.filter((r) => LIVE_STATES.has(r.state)).map((r) => r.name));

  const waiting = [...new Map(input.jobs.filter(isWaiting).map((j) => [j.id, j])).values()].sort((a, b) => a.id - b.id);
  const byTarget = new Map<string, ActionRunJob[]>();
  const jobs: JobPlan[] = [];
  const jobPlanById = new Map<number, JobPlan>();
  for (const j of waiting) {
    const t = matchTarget(targets, j.runs_on);
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

  const intents: Intent[] = [];
  const cancels: Cancel[] = [];
  const targetPlans: TargetPlan[] = [];
  let warmSeqUsed = 0;

  for (const t of targets) {
    const cap = caps.get(t.name) as NonNullable<ReturnType<typeof caps.get>>;
    const tJobs = byTarget.get(t.name) ?? [];
    let room = t.maxRunners === undefined ? Infinity : Math.max(0, t.maxRunners - cap.inFlight.length);
    const atCapReason = () => `at cap: target ${t.name} has ${cap.inFlight.length} runner(s) in flight, max_runners ${t.maxRunners}`;
    let jobIntents = 0;

    const pinnedJobs = input.handles ? tJobs.filter((j) => j.handle) : [];
    const unpinnedJobs = input.handles ? tJobs.filter((j) => !j.handle) : tJobs;
    const livePinned = new Map<number, DispatcherRunner>();
    for (const j of pinnedJobs) {
      const live = cap.pinned.find((r) => r.job?.id === j.id && (!r.job.handle || r.job.handle === j.handle) && LIVE_STATES.has(r.state));
      if (live) livePinned.set(j.id, live);
    }
    // Jobs a free runner will take: every waiting job without a live runner of its own (before
    // issue 13, only the jobs without a handle: each of the others got a runner pinned to it).
    const forFree = input.pinEveryJob ? unpinnedJobs : tJobs.filter((j) => !livePinned.has(j.id));

    // Stop idle runners near their deadline or above the wanted size (only with a runner list).
    let free = cap.free;
    if (input.registered && !input.registeredFailed) {
      const trimmed = trimWarm(t, cap, forFree.length, now);
      cancels.push(...trimmed.cancels);
      free = trimmed.free;
    }
    if (input.jobsComplete && !input.pinEveryJob) cancels.push(...stalePinned(t.name, cap, new Set(tJobs.map((j) => j.id))));

    // Forgejo hands the oldest waiting job to an idle runner: the free runners cover the oldest
    // jobs, and only the newer ones need runners of their own (no paying twice).
    const covered = new Set(forFree.slice(0, free).map((j) => j.id));
    const freeNote = `waiting for one of ${free} idle or starting runner(s) of target ${t.name}`;

    // The warm pool's top-up, counting what stays free once the waiting jobs are served.
    let warmNeed = Math.max(0, t.minIdle - Math.max(0, free - forFree.length));
    let warmNote: string | undefined;
    if (warmNeed > 0 && input.registeredFailed) {
      warmNote = "runner list unavailable this pass; warm pool not topped up";
      warmNeed = 0;
    }
    // Warm runners asked for now take the oldest jobs beyond the free ones, as well as a pinned
    // runner would: such a job gets none of its own, so no two boots race for it. They come out
    // of the room first (they serve the older jobs); the pool refills on a later pass.
    const byWarm = input.pinEveryJob ? [] : forFree.slice(free).filter((j) => j.handle && input.handles).slice(0, Math.min(warmNeed, room));
    room -= byWarm.length;
    const warmNowNote = `waiting for one of ${byWarm.length} warm runner(s) of target ${t.name} asked for now`;

    // Each job with a handle that no free runner covers gets exactly one runner pinned to it.
    for (const j of pinnedJobs) {
      const jp = jobPlanById.get(j.id) as JobPlan;
      const live = livePinned.get(j.id);
      if (live) {
        Object.assign(jp, { state: "in_flight", reason: describeRunner(live, now) });
        continue;
      }
      if (covered.has(j.id) || byWarm.includes(j)) {
        Object.assign(jp, { state: "covered", reason: covered.has(j.id) ? freeNote : warmNowNote });
        continue;
      }
      const base = jobBaseKey(input.instance, j);
      const d = decideKey(input.book.get(base), liveNames, input);
      if (!d.dispatch) {
        Object.assign(jp, { state: d.state, reason: d.reason });
        continue;
      }
      if (room <= 0) {
        Object.assign(jp, { state: "at_cap", reason: atCapReason() });
        continue;
      }
      room--;
      jobIntents++;
      const key = withGeneration(base, d.gen);
      intents.push({ key, target: t.name, count: 1, kind: "job", job: { id: j.id, attempt: j.attempt, handle: j.handle }, forJob: j.id, baseKey: base, gen: d.gen });
      Object.assign(jp, { state: "dispatch", key, reason: d.note ? `asking the dispatcher for a runner (${d.note})` : "asking the dispatcher for a runner" });
    }

    // Without handles runners are interchangeable: waiting − free more are needed. Keys still come
    // from jobs (newest first: older jobs are the likelier to have a runner on its way already).
    let need = unpinnedJobs.filter((j) => !covered.has(j.id)).length;
    for (const j of [...unpinnedJobs].reverse()) {
      const jp = jobPlanById.get(j.id) as JobPlan;
      const base = jobBaseKey(input.instance, j);
      const d = need > 0 ? decideKey(input.book.get(base), liveNames, input) : undefined;
      if (!d) {
        Object.assign(jp, { state: "covered", reason: freeNote });
        continue;
      }
      if (!d.dispatch) {
        Object.assign(jp, { state: d.state === "in_flight" ? "covered" : d.state, reason: d.reason });
        // A runner asked for after the dispatcher was read is not in `free` yet: it serves one.
        if (d.state === "requested") need--;
        // Its own live runner is counted in `free` already, or it is in backoff: the next job may go.
        continue;
      }
      if (room <= 0) {
        Object.assign(jp, { state: "at_cap", reason: atCapReason() });
        continue;
      }
      room--;
      need--;
      jobIntents++;
      const key = withGeneration(base, d.gen);
      intents.push({ key, target: t.name, count: 1, kind: "job", forJob: j.id, baseKey: base, gen: d.gen });
      Object.assign(jp, { state: "dispatch", key, reason: d.note ? `asking the dispatcher for a runner (${d.note})` : "asking the dispatcher for a runner" });
    }

    // Warm pool: the runners reserved for jobs above, then the rest of the top-up as room allows.
    let warmIntents = 0;
    room += byWarm.length;
    if (warmNeed > room) warmNote = `${warmNeed - Math.max(0, room)} warm runner(s) short: ${atCapReason()}`;
    const outstanding = [...(input.warm.outstanding.get(t.name) ?? [])];
    for (let i = 0; i < warmNeed && room > 0; i++) {
      const key = outstanding.shift() ?? warmKey(input.instance, t.name, input.warm.boot, input.warm.nextSeq + warmSeqUsed++);
      intents.push({ key, target: t.name, count: 1, kind: "warm" });
      room--;
      warmIntents++;
    }

    targetPlans.push({
      name: t.name,
      labels: [...t.labels],
      waiting: tJobs.length,
      running: cap.running,
      idle: cap.idle ?? null,
      inFlight: cap.inFlight.length,
      free,
      minIdle: t.minIdle,
      maxRunners: t.maxRunners ?? null,
      jobIntents,
      warmIntents,
      warmNote,
    });
  }

  return { intents, cancels, jobs, targets: targetPlans, warmSeqUsed };
}

/** Running jobs are not planned for; exported for status counts. */
export { isRunning, isWaiting };
