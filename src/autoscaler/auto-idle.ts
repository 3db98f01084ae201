/**
 * An `auto` warm-pool size from the recent arrival rate (issue 13 item 3c): the jobs expected to
 * arrive during one boot time (Little's law: rate × boot), rounded up, at most `max`. A pool that
 * size takes the jobs that come while its replacements boot; an idle target keeps none.
 */
export interface AutoIdle {
  /** Cost ceiling: warm runners at most. */
  max: number;
  /** How far back arrivals count. */
  windowMs: number;
  /** Expected boot time of the target's instances. */
  bootMs: number;
}

/** The pool size for arrivals (ms timestamps) seen up to `now`. */
export function autoMinIdle(arrivals: readonly number[], now: number, a: AutoIdle): number {
  const recent = arrivals.filter((t) => t > now - a.windowMs && t <= now).length;
  if (recent === 0) return 0;
  return Math.min(a.max, Math.ceil((recent * a.bootMs) / a.windowMs));
}

/** Remembers when each job was first seen waiting, per target, for as long as a window needs. */
export class ArrivalLog {
  private readonly seen = new Map<number, number>();
  private readonly byTarget = new Map<string, number[]>();

  /** Records the jobs not seen before (id → target name) at `now`; forgets what is older than `keepMs`. */
  note(jobs: Iterable<{ id: number; target: string }>, now: number, keepMs: number): void {
    for (const j of jobs) {
      if (this.seen.has(j.id)) continue;
      this.seen.set(j.id, now);
      const list = this.byTarget.get(j.target) ?? [];
      list.push(now);
      this.byTarget.set(j.target, list);
    }
    for (const [id, at] of this.seen) if (at <= now - keepMs) this.seen.delete(id);
    for (const [t, list] of this.byTarget)
      this.byTarget.set(
        t,
        list.filter((at) => at > now - keepMs),
      );
  }

  arrivals(target: string): readonly number[] {
    return this.byTarget.get(target) ?? [];
  }
}
