import type { ActionRunJob } from "../forgejo/types.js";
import type { DispatcherRunner } from "./dispatcher-types.js";
import { REJECTED_RETRY_MS, generationDelayMs, withGeneration } from "./keys.js";
import type { KeyRecord } from "./keys.js";
import type { Intent, JobPlan, JobState, PlanInput, PlanTarget } from "./plan.js";

/**
 * What the parts of one target's plan (pinned jobs, unpinned jobs, the warm pool) share: the
 * input, the room left under max_runners, and the one tail every intent goes through.
 */
export interface TargetPass {
  input: PlanInput;
  t: PlanTarget;
  /** Names of the dispatcher's runners that are still alive (pending, launching, running). */
  liveNames: ReadonlySet<string>;
  jobPlanById: ReadonlyMap<number, JobPlan>;
  intents: Intent[];
  /** Runners still allowed under max_runners (Infinity without one). */
  room: number;
  jobIntents: number;
  atCapReason: () => string;
}

export const secs = (ms: number) => `${Math.max(0, Math.round(ms / 1000))}s`;

function ageOf(r: DispatcherRunner, now: number): string {
  const t = Date.parse(r.updated_at ?? r.created_at ?? "");
  return Number.isFinite(t) ? ` since ${secs(now - t)}` : "";
}

export function describeRunner(r: DispatcherRunner, now: number): string {
  return `runner ${r.name} ${r.state}${ageOf(r, now)}`;
}

/** Decision for a job's key from the book: dispatch generation `gen`, or wait with a reason. */
export type KeyDecision = { dispatch: true; gen: number; note?: string } | { dispatch: false; state: JobState; reason: string };

export function decideKey(rec: KeyRecord | undefined, liveNames: ReadonlySet<string>, input: PlanInput): KeyDecision {
  if (!rec) return { dispatch: true, gen: 0 };
  switch (rec.status) {
    case "error":
      return { dispatch: true, gen: rec.gen, note: `retrying after: ${rec.message ?? "dispatcher error"}` };
    case "rejected": {
      const wait = rec.at + REJECTED_RETRY_MS - input.now;
      if (wait > 0)
        return {
          dispatch: false,
          state: "refused",
          reason: `${rec.message ?? "dispatcher refused the request"}; asking again in ${secs(wait)}`,
        };
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
      if (wait > 0)
        return { dispatch: false, state: "backoff", reason: `${who} ended without taking this job; asking for another in ${secs(wait)}` };
      return { dispatch: true, gen: next, note: `${who} ended without taking this job` };
    }
  }
}

/** The tail every intent goes through: it takes one unit of room and is asked for. */
export function emit(pass: TargetPass, intent: Intent): void {
  pass.room--;
  pass.intents.push(intent);
}

/**
 * Asks for a runner for job `j` under generation `d.gen` of its key (pinned: the runner carries
 * the job), or, without room, says the target is at cap. True when a runner was asked for.
 */
export function askForJob(
  pass: TargetPass,
  j: ActionRunJob,
  base: string,
  d: { gen: number; note?: string | undefined },
  pinned: boolean,
): boolean {
  const jp = pass.jobPlanById.get(j.id) as JobPlan;
  if (pass.room <= 0) {
    Object.assign(jp, { state: "at_cap", reason: pass.atCapReason() });
    return false;
  }
  const key = withGeneration(base, d.gen);
  const job = pinned ? { job: { id: j.id, attempt: j.attempt, handle: j.handle } } : {};
  emit(pass, { key, target: pass.t.name, count: 1, kind: "job", ...job, forJob: j.id, baseKey: base, gen: d.gen });
  pass.jobIntents++;
  Object.assign(jp, {
    state: "dispatch",
    key,
    reason: d.note ? `asking the dispatcher for a runner (${d.note})` : "asking the dispatcher for a runner",
  });
  return true;
}
