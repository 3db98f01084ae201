import type { ActionRunJob } from "../forgejo/types.js";
import type { DispatcherRunner } from "./dispatcher-types.js";
import { jobBaseKey } from "./keys.js";
import type { JobPlan } from "./plan.js";
import { askForJob, decideKey, describeRunner } from "./plan-pass.js";
import type { TargetPass } from "./plan-pass.js";

/** How the jobs a free runner or a warm runner asked for now will take are described. */
export interface Coverage {
  /** Jobs the free (idle or starting) runners cover, oldest first. */
  covered: ReadonlySet<number>;
  freeNote: string;
  /** Jobs the warm runners asked for on this pass will take. */
  byWarm: readonly ActionRunJob[];
  warmNowNote: string;
}

/** Each job with a handle that no free or warm runner covers gets exactly one runner pinned to it. */
export function planPinned(
  pass: TargetPass,
  pinnedJobs: readonly ActionRunJob[],
  livePinned: ReadonlyMap<number, DispatcherRunner>,
  c: Coverage,
): void {
  const { input } = pass;
  for (const j of pinnedJobs) {
    const jp = pass.jobPlanById.get(j.id) as JobPlan;
    const live = livePinned.get(j.id);
    if (live) {
      Object.assign(jp, { state: "in_flight", reason: describeRunner(live, input.now) });
      continue;
    }
    if (c.covered.has(j.id) || c.byWarm.includes(j)) {
      Object.assign(jp, { state: "covered", reason: c.covered.has(j.id) ? c.freeNote : c.warmNowNote });
      continue;
    }
    const base = jobBaseKey(input.instance, j);
    const d = decideKey(input.book.get(base), pass.liveNames, input);
    if (!d.dispatch) {
      Object.assign(jp, { state: d.state, reason: d.reason });
      continue;
    }
    askForJob(pass, j, base, d, true);
  }
}
