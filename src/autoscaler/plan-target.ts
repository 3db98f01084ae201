import { COUNTS_TOWARD_DEMAND_STATES, isOneOf } from "../api/states.js";
import type { ActionRunJob } from "../forgejo/types.js";
import type { TargetCapacity } from "./capacity.js";
import type { DispatcherRunner } from "./dispatcher-types.js";
import type { Intent, JobPlan, PlanInput, PlanTarget, TargetPlan } from "./plan.js";
import type { TargetPass } from "./plan-pass.js";
import { planPinned } from "./plan-pinned.js";
import { planUnpinned } from "./plan-unpinned.js";
import { reserveWarm, topUpWarm } from "./plan-warm.js";
import { stalePinned, trimWarm } from "./warm-trim.js";
import type { Cancel } from "./warm-trim.js";

/** What plan() gathered for every target, and where one target's plan adds its intents and cancels. */
export interface PlanShared {
  input: PlanInput;
  liveNames: ReadonlySet<string>;
  jobPlanById: ReadonlyMap<number, JobPlan>;
  intents: Intent[];
  cancels: Cancel[];
  /** New warm keys used so far (across targets). */
  warmSeq: { used: number };
}

/**
 * One target's plan: trim idle runners, let the free runners cover the oldest jobs, reserve the
 * warm top-up, then a runner for each pinned and each uncovered unpinned job, then the warm pool.
 */
export function planTarget(s: PlanShared, t: PlanTarget, cap: TargetCapacity, tJobs: readonly ActionRunJob[]): TargetPlan {
  const { input } = s;
  const pass: TargetPass = {
    input,
    t,
    liveNames: s.liveNames,
    jobPlanById: s.jobPlanById,
    intents: s.intents,
    room: t.maxRunners === undefined ? Infinity : Math.max(0, t.maxRunners - cap.inFlight.length),
    jobIntents: 0,
    atCapReason: () => `at cap: target ${t.name} has ${cap.inFlight.length} runner(s) in flight, max_runners ${t.maxRunners}`,
  };

  const pinnedJobs = input.handles ? tJobs.filter((j) => j.handle) : [];
  const unpinnedJobs = input.handles ? tJobs.filter((j) => !j.handle) : tJobs;
  const livePinned = new Map<number, DispatcherRunner>();
  for (const j of pinnedJobs) {
    const live = cap.pinned.find(
      (r) => r.job?.id === j.id && (!r.job.handle || r.job.handle === j.handle) && isOneOf(COUNTS_TOWARD_DEMAND_STATES, r.state),
    );
    if (live) livePinned.set(j.id, live);
  }
  // Jobs a free runner will take: every waiting job without a live runner of its own (before
  // issue 13, only the jobs without a handle: each of the others got a runner pinned to it).
  const forFree = input.pinEveryJob ? unpinnedJobs : tJobs.filter((j) => !livePinned.has(j.id));

  // Stop idle runners near their deadline or above the wanted size (only with a runner list).
  let free = cap.free;
  if (input.registered && !input.registeredFailed) {
    const trimmed = trimWarm(t, cap, forFree.length, input.now);
    s.cancels.push(...trimmed.cancels);
    free = trimmed.free;
  }
  if (input.jobsComplete && !input.pinEveryJob) s.cancels.push(...stalePinned(t.name, cap, new Set(tJobs.map((j) => j.id))));

  // Forgejo hands the oldest waiting job to an idle runner: the free runners cover the oldest
  // jobs, and only the newer ones need runners of their own (no paying twice).
  const covered = new Set(forFree.slice(0, free).map((j) => j.id));
  const freeNote = `waiting for one of ${free} idle or starting runner(s) of target ${t.name}`;
  const warm = reserveWarm(pass, free, forFree);
  const warmNowNote = `waiting for one of ${warm.byWarm.length} warm runner(s) of target ${t.name} asked for now`;

  planPinned(pass, pinnedJobs, livePinned, { covered, freeNote, byWarm: warm.byWarm, warmNowNote });
  planUnpinned(pass, unpinnedJobs, covered, freeNote);
  const { warmIntents, warmNote } = topUpWarm(pass, warm, s.warmSeq);

  return {
    name: t.name,
    labels: [...t.labels],
    waiting: tJobs.length,
    running: cap.running,
    idle: cap.idle ?? null,
    inFlight: cap.inFlight.length,
    free,
    minIdle: t.minIdle,
    maxRunners: t.maxRunners ?? null,
    jobIntents: pass.jobIntents,
    warmIntents,
    warmNote,
  };
}
