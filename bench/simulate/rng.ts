/**
 * A seeded pseudo-random generator (mulberry32) and the few distributions the simulator draws
 * from. Math.random is never used: a run is a pure function of its seed.
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Exponential with the given mean (gaps of a Poisson process). */
  exp(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Picks from weighted choices. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((s, [, w]) => s + w, 0);
    let x = this.next() * total;
    for (const [v, w] of choices) {
      x -= w;
      if (x < 0) return v;
    }
    return (choices[choices.length - 1] as readonly [T, number])[0];
  }

  /** A new generator for a named purpose, so drawing more for one purpose leaves the others alone. */
  fork(purpose: string): Rng {
    let h = this.state ^ 0x9e3779b9;
    for (let i = 0; i < purpose.length; i++) h = Math.imul(h ^ purpose.charCodeAt(i), 0x01000193);
    return new Rng(h >>> 0);
  }
}

/** A duration distribution in milliseconds. */
export type Distribution =
  | { kind: "fixed"; ms: number }
  /** Log-normal around a median, clipped to [minMs, maxMs]: boot and job times have long right tails. */
  | { kind: "lognormal"; medianMs: number; sigma: number; minMs: number; maxMs: number };

export function draw(d: Distribution, rng: Rng): number {
  if (d.kind === "fixed") return d.ms;
  const x = d.medianMs * Math.exp(d.sigma * rng.normal());
  return Math.round(Math.min(d.maxMs, Math.max(d.minMs, x)));
}
