/**
 * The simulator's fake clock: a queue of events ordered by time (then by insertion), run one at a
 * time. Nothing sleeps and no timer is set; time jumps from one event to the next.
 */
export type Handler = () => void | Promise<void>;

interface Entry {
  at: number;
  seq: number;
  run: Handler;
}

export class EventQueue {
  private heap: Entry[] = [];
  private seq = 0;
  private time: number;

  constructor(start: number) {
    this.time = start;
  }

  get now(): number {
    return this.time;
  }

  /** Runs `run` at `at` (never in the past: an earlier time means now). */
  at(at: number, run: Handler): void {
    this.push({ at: Math.max(at, this.time), seq: this.seq++, run });
  }

  after(delayMs: number, run: Handler): void {
    this.at(this.time + Math.max(0, delayMs), run);
  }

  /** Runs every event due up to `end`, in order; events scheduled meanwhile join in. The clock ends at `end`. */
  async runUntil(end: number): Promise<void> {
    for (;;) {
      const top = this.heap[0];
      if (!top || top.at > end) break;
      this.pop();
      this.time = top.at;
      await top.run();
    }
    this.time = Math.max(this.time, end);
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as Entry, h[p] as Entry)) break;
      [h[i], h[p]] = [h[p] as Entry, h[i] as Entry];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Entry;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l] as Entry, h[m] as Entry)) m = l;
      if (r < h.length && this.less(h[r] as Entry, h[m] as Entry)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m] as Entry, h[i] as Entry];
      i = m;
    }
  }
}
