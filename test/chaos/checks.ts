/**
 * What the replica chaos test (test/chaos/replicas.chaos.ts) concludes from what it collected:
 * pure functions over plain data, table-tested in test/ha/chaos-checks.test.ts.
 */

/** One holding of a lease, from the lease_terms table (times by the database's clock, ms). */
export interface Term {
  epoch: number;
  holder: string;
  acquiredAt: number;
}

/** An effect on the outside world (an nsc run/create/destroy) by a replica, when it started (ms). */
export interface Effect {
  holder: string;
  what: string;
  at: number;
}

export interface Violation {
  effect: Effect;
  /** Who held the lease at that moment (null: nobody had yet). */
  heldBy: string | null;
}

/**
 * Effects made by a replica while the lease was someone else's: the holding in force at time t is
 * the term acquired last at or before t. A replica that acts only within its own terms has none.
 */
export function effectsOutsideTerms(effects: readonly Effect[], terms: readonly Term[]): Violation[] {
  const sorted = [...terms].sort((a, b) => a.acquiredAt - b.acquiredAt || a.epoch - b.epoch);
  const out: Violation[] = [];
  for (const e of effects) {
    let current: Term | undefined;
    for (const t of sorted) {
      if (t.acquiredAt > e.at) break;
      current = t;
    }
    if (current?.holder !== e.holder) out.push({ effect: e, heldBy: current?.holder ?? null });
  }
  return out;
}

/** A leader's death (SIGKILL) or pause (SIGSTOP) at `at`. */
export interface Outage {
  holder: string;
  at: number;
}

/**
 * Failover times: for each outage, how long until another holder acquired the lease (ms), or
 * undefined when nobody did (or the dead holder was not leading).
 */
export function failoverTimes(outages: readonly Outage[], terms: readonly Term[]): (number | undefined)[] {
  const sorted = [...terms].sort((a, b) => a.acquiredAt - b.acquiredAt);
  return outages.map((o) => {
    const next = sorted.find((t) => t.acquiredAt >= o.at && t.holder !== o.holder);
    return next ? next.acquiredAt - o.at : undefined;
  });
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Keys that occur more than once, with their counts. */
export function repeated(keys: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  return new Map([...counts].filter(([, n]) => n > 1));
}

/** The values of `wanted` that are missing from `have`. */
export function missing(wanted: readonly string[], have: Iterable<string>): string[] {
  const set = new Set(have);
  return wanted.filter((w) => !set.has(w));
}
