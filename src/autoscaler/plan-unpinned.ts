import type { ActionRunJob } from "../forgejo/types.js";
import { jobBaseKey } from "./keys.js";
import type { JobPlan } from "./plan.js";
import { askForJob, decideKey } from "./plan-pass.js";
import type { TargetPass } from "./plan-pass.js";

/**
 * Without handles runners are interchangeable: waiting − free more are needed. Keys still come
 * from jobs (newest first: older jobs are the likelier to have a runner on its way already).
 */
export function planUnpinned(
  pass: TargetPass,
  unpinnedJobs: readonly ActionRunJob[],
  covered: ReadonlySet<number>,
  freeNote: string,
): void {
  const { input } = pass;
  let need = unpinnedJobs.filter((j) => !covered.has(j.id)).length;
  for (const j of [...unpinnedJobs].reverse()) {
    const jp = pass.jobPlanById.get(j.id) as JobPlan;
    const base = jobBaseKey(input.instance, j);
    const d = need > 0 ? decideKey(input.book.get(base), pass.liveNames, input) : undefined;
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
    if (askForJob(pass, j, base, d, false)) need--;
  }
}
