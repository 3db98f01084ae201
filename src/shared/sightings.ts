/**
 * "Seen twice in a row before acting": a thing (an orphan instance, a runner gone from the forge's
 * list) is acted on only when two consecutive looks both show it, so one racy read never destroys
 * or fails anything. `see(key)` records a sighting in this look and says whether it confirms one
 * from the previous look; `keepOnly(keys)` forgets everything not seen in this look, so two
 * non-consecutive sightings never add up.
 */
export class Sightings<K = string> {
  private readonly counts = new Map<K, number>();

  constructor(private readonly needed = 2) {}

  /** Counts a sighting; true once `needed` consecutive looks have seen `key`. */
  see(key: K): boolean {
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    return n >= this.needed;
  }

  /** Forgets every key not in `seen` (the keys of this look). */
  keepOnly(seen: Iterable<K>): void {
    const keep = new Set(seen);
    for (const key of [...this.counts.keys()]) if (!keep.has(key)) this.counts.delete(key);
  }

  forget(key: K): void {
    this.counts.delete(key);
  }

  get size(): number {
    return this.counts.size;
  }
}
