import { Cron } from "croner";

export interface SchedulePeriodSpec {
  cron: string;
  /** Milliseconds the period lasts after each start; or `until`. */
  duration?: number | undefined;
  /** Cron expression marking the end of the period. */
  until?: string | undefined;
  min_idle: number;
}

export interface WarmPoolSpec {
  min_idle: number;
  min_idle_schedule: readonly SchedulePeriodSpec[];
  timezone: string;
}

export interface EffectiveMinIdle {
  minIdle: number;
  /** Index into min_idle_schedule of the period in force, or undefined for the base min_idle. */
  period: number | undefined;
}

const cache = new Map<string, Cron>();

function cron(pattern: string, timezone: string): Cron {
  const key = `${timezone}\u0000${pattern}`;
  let c = cache.get(key);
  if (!c) {
    // paused: we only compute occurrences, nothing is ever scheduled.
    c = new Cron(pattern, { timezone, paused: true });
    cache.set(key, c);
  }
  return c;
}

// Windows searched, smallest first, for the latest occurrence at or before an instant; the last
// occurrence is then found by bisection, so dense patterns ("every minute from 8 to 18") cost
// tens of steps, not thousands.
const LOOKBACK_MS = [60_000, 3_600_000, 86_400_000, 8 * 86_400_000, 32 * 86_400_000, 367 * 86_400_000];

const nextAfter = (c: Cron, ms: number) => c.nextRun(new Date(ms))?.getTime();

// Per pattern, the last answer and the occurrence after it: any instant in [last, next) has the
// same answer, so the passes of a running daemon almost never compute anything.
const memo = new WeakMap<Cron, { last: number; next: number }>();

/** The latest occurrence of `c` at or before `at` (within about a year), in ms. */
export function lastOccurrence(c: Cron, at: number): number | undefined {
  const m = memo.get(c);
  if (m && at >= m.last && at < m.next) return m.last;
  const last = searchLast(c, at);
  if (last !== undefined) memo.set(c, { last, next: nextAfter(c, last) ?? Infinity });
  return last;
}

function searchLast(c: Cron, at: number): number | undefined {
  for (const window of LOOKBACK_MS) {
    let lo = at - window;
    const first = nextAfter(c, lo);
    if (first === undefined || first > at) continue;
    // Invariant: the first occurrence after lo is <= at; the first after hi is > at.
    let hi = at;
    while (hi - lo > 1000) {
      const mid = Math.floor((lo + hi) / 2);
      const n = nextAfter(c, mid);
      if (n !== undefined && n <= at) lo = mid;
      else hi = mid;
    }
    return nextAfter(c, lo);
  }
  return undefined;
}

/** Whether a period is in force at `at`: started, and neither its duration nor its `until` passed since. */
export function periodActive(p: SchedulePeriodSpec, timezone: string, at: number): boolean {
  const start = lastOccurrence(cron(p.cron, timezone), at);
  if (start === undefined) return false;
  if (p.duration !== undefined) return at < start + p.duration;
  if (p.until !== undefined) {
    const end = lastOccurrence(cron(p.until, timezone), at);
    // An end at the very instant of a start closes it: periods are [start, end).
    return end === undefined || end < start;
  }
  return false;
}

/**
 * The warm-pool size at an instant. When several periods are in force the last one in the list
 * wins, so a later entry can lower the pool (holidays) as well as raise it. Pure: the instant is an
 * argument, time zones and DST come from croner.
 */
export function effectiveMinIdle(spec: WarmPoolSpec, at: number): EffectiveMinIdle {
  for (let i = spec.min_idle_schedule.length - 1; i >= 0; i--) {
    const p = spec.min_idle_schedule[i] as SchedulePeriodSpec;
    if (periodActive(p, spec.timezone, at)) return { minIdle: p.min_idle, period: i };
  }
  return { minIdle: spec.min_idle, period: undefined };
}
