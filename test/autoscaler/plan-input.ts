import type { PlanInput, PlanTarget } from "../../src/autoscaler/plan.js";
import type { ActionRunJob } from "../../src/forgejo/types.js";

/** A plan() input for table tests: one target, nothing observed yet, observed 100 ms before `now`. */
export function planInput(target: PlanTarget, now: number, over: Partial<PlanInput> = {}): PlanInput {
  return {
    instance: "fj",
    now,
    observedAt: now - 100,
    targets: [target],
    jobs: [],
    handles: true,
    registered: [],
    inFlight: [],
    book: new Map(),
    warm: { boot: "b", nextSeq: 0, outstanding: new Map() },
    ...over,
  };
}

/** A waiting job on the "linux" label, attempt 1, with a handle (Forgejo >= 15). */
export const waitingJob = (id: number, extra: Partial<ActionRunJob> = {}): ActionRunJob => ({
  id,
  runs_on: ["linux"],
  status: "waiting",
  attempt: 1,
  handle: `h-${id}`,
  ...extra,
});
