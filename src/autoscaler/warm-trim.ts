import { formatDuration } from "../config/duration.js";
import type { TargetCapacity } from "./capacity.js";
import type { DispatcherRunner } from "./dispatcher-types.js";

/** One runner to stop at the dispatcher (DELETE /api/v1/runners/{name}). */
export interface Cancel {
  runner: string;
  target: string;
  /** retire: too little TTL left for a job; shrink: idle above the wanted size for too long; unneeded: a pending pinned runner whose job is gone. */
  kind: "retire" | "shrink" | "unneeded";
  reason: string;
}

export interface TrimTarget {
  name: string;
  /** Effective min_idle now. */
  minIdle: number;
  /** warm_idle_timeout: an idle runner above the wanted size is stopped after this long. Undefined: never. */
  warmIdleTimeoutMs?: number | undefined;
  /** warm_retire_before: an idle runner with less TTL left than this is stopped. Undefined: never. */
  warmRetireBeforeMs?: number | undefined;
}

const at = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);
const dur = (ms: number) => formatDuration(Math.max(0, Math.round(ms / 1000) * 1000));

/**
 * Which idle runners of one target to stop, and how many free runners remain. Only runners the
 * forge shows registered, idle and not busy are candidates (capacityByTarget's idleOurs): a runner
 * still booting or taking a job is never stopped. Call only when the forge's runner list was read
 * this pass; without it nothing is known to be idle.
 *
 * - retire: an idle runner whose Namespace deadline (expires_at) is nearer than warmRetireBefore
 *   could take a job the deadline then kills; it is stopped and, not counting as free, replaced.
 * - shrink: runners free beyond the waiting jobs they will take and min_idle are surplus; those idle
 *   for warmIdleTimeout (idle since they became running: a one-job runner that is idle never took
 *   a job) are stopped, the nearest to their deadline first.
 */
export function trimWarm(t: TrimTarget, cap: TargetCapacity, jobsForFree: number, now: number): { cancels: Cancel[]; free: number } {
  const cancels: Cancel[] = [];
  const keep: DispatcherRunner[] = [];
  for (const r of cap.idleOurs) {
    const left = at(r.expires_at) - now;
    // A TTL no longer than warm_retire_before (the dispatcher's default TTL, say) would have every
    // replacement retired too: launching in a loop buys nothing, so such runners are left alone.
    const life = at(r.expires_at) - at(r.created_at);
    const replaceable = !(life <= (t.warmRetireBeforeMs ?? 0));
    if (t.warmRetireBeforeMs !== undefined && Number.isFinite(left) && left < t.warmRetireBeforeMs && replaceable) {
      cancels.push({
        runner: r.name,
        target: t.name,
        kind: "retire",
        reason: `idle with ${dur(left)} of its TTL left, less than warm_retire_before ${dur(t.warmRetireBeforeMs)}: a job it took could be killed by the deadline; replacing it`,
      });
    } else {
      keep.push(r);
    }
  }
  let free = cap.free - cancels.length;
  const surplus = free - jobsForFree - t.minIdle;
  if (t.warmIdleTimeoutMs !== undefined && surplus > 0) {
    const timeout = t.warmIdleTimeoutMs;
    const freeBefore = free;
    const stale = keep
      .map((r) => ({ r, idleFor: now - at(r.updated_at), ends: at(r.expires_at) }))
      .filter((x) => Number.isFinite(x.idleFor) && x.idleFor >= timeout)
      .sort(
        (a, b) =>
          (Number.isFinite(a.ends) ? a.ends : Infinity) - (Number.isFinite(b.ends) ? b.ends : Infinity) ||
          b.idleFor - a.idleFor ||
          a.r.name.localeCompare(b.r.name),
      );
    for (const { r, idleFor } of stale.slice(0, surplus)) {
      cancels.push({
        runner: r.name,
        target: t.name,
        kind: "shrink",
        reason: `idle for ${dur(idleFor)} (warm_idle_timeout ${dur(timeout)}) while target ${t.name} has ${freeBefore} free runner(s) for ${jobsForFree} waiting job(s) and min_idle ${t.minIdle}`,
      });
      free--;
    }
  }
  return { cancels, free };
}

/**
 * Pinned runners still pending (no instance asked for yet) whose job is no longer waiting: a free
 * runner took it, or it was cancelled. Stopping them costs nothing. A launching runner is left
 * alone: its instance may be up and running that very job.
 */
export function stalePinned(target: string, cap: TargetCapacity, waitingIds: ReadonlySet<number>): Cancel[] {
  return cap.pinned
    .filter((r) => r.state === "pending" && r.job && !waitingIds.has(r.job.id))
    .map((r) => ({
      runner: r.name,
      target,
      kind: "unneeded" as const,
      reason: `job ${r.job?.id} is no longer waiting (another runner took it, or it was cancelled) and this runner has not started`,
    }));
}
