import { COUNTS_TOWARD_DEMAND_STATES, isOneOf } from "../api/states.js";
import type { ActionRunJob, ActionRunner } from "../forgejo/types.js";
import type { DispatcherRunner } from "./dispatcher-types.js";
import { coversAll, sameNames } from "./labels.js";
import { matchTarget } from "./match.js";
import type { LabelledTarget } from "./match.js";

export const isWaiting = (j: ActionRunJob) => j.status === "waiting" || j.status === "queued";
export const isRunning = (j: ActionRunJob) => j.status === "running" || j.status === "in_progress";

/** What one target has right now, as far as Forgejo and the dispatcher say. */
export interface TargetCapacity {
  /** Runners of this target at the dispatcher (every in-flight state). Counts against max_runners. */
  inFlight: DispatcherRunner[];
  /** In-flight runners pinned to a job. */
  pinned: DispatcherRunner[];
  /** Registered runners idle at Forgejo (not pinned); undefined when the server cannot list runners. */
  idle: number | undefined;
  /** Runners that will take any job of this target: idle, or on their way and not pinned. */
  free: number;
  /** Our unpinned runners the forge shows registered and idle (not busy): the only ones a scale-down may stop. */
  idleOurs: DispatcherRunner[];
  /** Jobs of this target a runner is working on. */
  running: number;
}

/** The first target (config order) whose label names equal the dispatcher runner's. */
export function targetOfDispatched<T extends LabelledTarget>(targets: readonly T[], r: DispatcherRunner): T | undefined {
  return targets.find((t) => sameNames(t.labels, r.labels));
}

/** The first target a registered runner could serve (its labels cover the target's). */
export function targetOfRegistered<T extends LabelledTarget>(targets: readonly T[], r: ActionRunner): T | undefined {
  return targets.find((t) => coversAll(r.labels, t.labels));
}

/**
 * Splits what was observed by target. A dispatcher runner is matched with the registered runner of
 * the same name (the dispatcher registers runners under their own names): active means busy,
 * idle means free, offline or absent means still starting. Registered runners the dispatcher does
 * not know (static runners) count as free while idle. Without a runner list (Forgejo 11–14) the
 * running jobs are assumed to occupy live unpinned runners.
 */
export function capacityByTarget<T extends LabelledTarget>(
  targets: readonly T[],
  jobs: readonly ActionRunJob[],
  inFlight: readonly DispatcherRunner[],
  registered: readonly ActionRunner[] | undefined,
): Map<string, TargetCapacity> {
  const out = new Map<string, TargetCapacity>();
  for (const t of targets)
    out.set(t.name, { inFlight: [], pinned: [], idle: registered ? 0 : undefined, free: 0, idleOurs: [], running: 0 });

  for (const j of jobs) {
    if (!isRunning(j)) continue;
    const t = matchTarget(targets, j.runs_on);
    if (t) (out.get(t.name) as TargetCapacity).running++;
  }

  const regByName = new Map<string, ActionRunner>();
  for (const r of registered ?? []) regByName.set(r.name, r);
  const dispatched = new Set<string>();

  for (const r of inFlight) {
    dispatched.add(r.name);
    const t = targetOfDispatched(targets, r);
    if (!t) continue;
    const cap = out.get(t.name) as TargetCapacity;
    cap.inFlight.push(r);
    if (r.job) {
      cap.pinned.push(r);
      continue;
    }
    if (!isOneOf(COUNTS_TOWARD_DEMAND_STATES, r.state)) continue;
    if (!registered) {
      cap.free++;
      continue;
    }
    const reg = regByName.get(r.name);
    if (!reg || reg.status === "offline" || reg.status === "idle") cap.free++;
    if (reg?.status === "idle") cap.idle = (cap.idle ?? 0) + 1;
    if (reg?.status === "idle" && reg.busy !== true && r.state === "running") cap.idleOurs.push(r);
  }

  if (registered) {
    for (const r of registered) {
      if (dispatched.has(r.name) || r.status !== "idle") continue;
      const t = targetOfRegistered(targets, r);
      if (!t) continue;
      const cap = out.get(t.name) as TargetCapacity;
      cap.free++;
      cap.idle = (cap.idle ?? 0) + 1;
    }
  } else {
    for (const cap of out.values()) cap.free = Math.max(0, cap.free - cap.running);
  }
  return out;
}
