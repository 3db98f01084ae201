import { LINUX_LARGE, LINUX_SMALL, MACOS } from "./deployment.js";
import type { Distribution } from "./rng.js";
import { Rng, draw } from "./rng.js";
import type { Trace, TraceJob, TraceRun } from "./trace.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
/** Monday 2 March 2026, 00:00 UTC: weekday schedules apply on the first day. */
export const MONDAY = Date.UTC(2026, 2, 2);

/** How long jobs of each label set run (assumed): small Linux minutes, large Linux and macOS longer. */
const RUN: Record<string, Distribution> = {
  [LINUX_SMALL]: { kind: "lognormal", medianMs: 3 * MIN, sigma: 0.5, minMs: 30_000, maxMs: 20 * MIN },
  [LINUX_LARGE]: { kind: "lognormal", medianMs: 8 * MIN, sigma: 0.5, minMs: 2 * MIN, maxMs: 35 * MIN },
  [MACOS]: { kind: "lognormal", medianMs: 12 * MIN, sigma: 0.4, minMs: 4 * MIN, maxMs: 40 * MIN },
};

/** Collects jobs in arrival order and numbers them as the forge would. */
class TraceBuilder {
  private readonly jobs: Omit<TraceJob, "id">[] = [];
  private runs = 0;

  constructor(private readonly rng: Rng) {}

  /** One workflow run of `count` jobs with the same label, all waiting at `arrival`. */
  add(arrival: number, label: string, count = 1, trigger: TraceRun["trigger"] = "push"): void {
    const run: TraceRun = { id: ++this.runs, trigger, draws: { started: this.rng.next(), finished: this.rng.next() } };
    for (let i = 0; i < count; i++) {
      const durationMs = draw(RUN[label] as Distribution, this.rng);
      this.jobs.push({
        arrival,
        runsOn: [label],
        durationMs,
        run,
        draws: { queued: this.rng.next(), started: this.rng.next(), completed: this.rng.next() },
      });
    }
  }

  /** Arrival times of a Poisson process with `perHour` events an hour in [from, to). */
  poisson(from: number, to: number, perHour: number): number[] {
    const out: number[] = [];
    for (let t = from + this.rng.exp(HOUR / perHour); t < to; t += this.rng.exp(HOUR / perHour)) out.push(Math.round(t));
    return out;
  }

  build(name: string, description: string, start: number, end: number): Trace {
    const jobs = [...this.jobs].sort((a, b) => a.arrival - b.arrival).map((j, i) => ({ ...j, id: i + 1 }));
    return { name, description, start, end, jobs };
  }
}

/** Monday 09:00–15:00: one job at a time, 20 an hour on average, 80 % small and 20 % large Linux. */
export function steadyTrace(seed: number): Trace {
  const rng = new Rng(seed).fork("steady");
  const b = new TraceBuilder(rng);
  const from = MONDAY + 9 * HOUR;
  for (const t of b.poisson(from, from + 6 * HOUR, 20)) b.add(t, rng.next() < 0.8 ? LINUX_SMALL : LINUX_LARGE);
  return b.build("steady", "Mon 09–15, Poisson 20 jobs/h, 80% small / 20% large Linux", MONDAY + 8 * HOUR, from + 6 * HOUR);
}

/** Monday 11:00, 11:05 and 14:00: a push each with a matrix of 20–50 jobs of one label set. */
export function burstTrace(seed: number): Trace {
  const rng = new Rng(seed).fork("bursts");
  const b = new TraceBuilder(rng);
  b.add(MONDAY + 11 * HOUR, LINUX_SMALL, rng.int(20, 50));
  b.add(MONDAY + 11 * HOUR + 5 * MIN, LINUX_SMALL, rng.int(20, 50));
  b.add(MONDAY + 14 * HOUR, LINUX_LARGE, rng.int(20, 50));
  return b.build(
    "bursts",
    "Mon 11:00, 11:05 (small Linux), 14:00 (large Linux): matrices of 20–50 jobs",
    MONDAY + 10 * HOUR,
    MONDAY + 14 * HOUR + MIN,
  );
}

/** Tuesday 02:00: 25 repositories' nightly workflows fire within 30 s, 1–4 jobs each, mixed labels. */
export function nightlyTrace(seed: number): Trace {
  const rng = new Rng(seed).fork("nightly");
  const b = new TraceBuilder(rng);
  const at = MONDAY + 26 * HOUR;
  for (let repo = 0; repo < 25; repo++) {
    const label = rng.weighted([
      [LINUX_LARGE, 50],
      [LINUX_SMALL, 35],
      [MACOS, 15],
    ] as const);
    b.add(at + rng.int(0, 30_000), label, rng.int(1, 4), "schedule");
  }
  return b.build(
    "nightly",
    "Tue 02:00: 25 scheduled workflows within 30 s, 1–4 jobs each (50% large, 35% small Linux, 15% macOS)",
    MONDAY + 25 * HOUR,
    at + MIN,
  );
}

/** Pushes an hour on Monday, by hour of day (UTC): quiet nights, busy office hours, a tail in the evening. */
const PUSHES_PER_HOUR = [1, 1, 1, 1, 1, 1, 2, 4, 10, 14, 14, 12, 8, 12, 14, 14, 12, 8, 5, 4, 3, 2, 1, 1];

/**
 * Monday 00:00–24:00: pushes at a rate that follows the working day, each with 1–6 jobs of one
 * shape (60 % small Linux, 25 % large Linux, 15 % macOS with 1–2 jobs), two matrix pushes of 20–30
 * small Linux jobs in the afternoon, and 15 nightly jobs at 02:00.
 */
export function mixedDayTrace(seed: number): Trace {
  const rng = new Rng(seed).fork("mixed-day");
  const b = new TraceBuilder(rng);
  PUSHES_PER_HOUR.forEach((rate, hour) => {
    for (const t of b.poisson(MONDAY + hour * HOUR, MONDAY + (hour + 1) * HOUR, rate)) {
      const label = rng.weighted([
        [LINUX_SMALL, 60],
        [LINUX_LARGE, 25],
        [MACOS, 15],
      ] as const);
      b.add(t, label, label === MACOS ? rng.int(1, 2) : rng.int(1, 6));
    }
  });
  b.add(MONDAY + 13 * HOUR + rng.int(0, 59) * MIN, LINUX_SMALL, rng.int(20, 30));
  b.add(MONDAY + 16 * HOUR + rng.int(0, 59) * MIN, LINUX_SMALL, rng.int(20, 30));
  b.add(MONDAY + 2 * HOUR, LINUX_LARGE, 10, "schedule");
  b.add(MONDAY + 2 * HOUR, LINUX_SMALL, 5, "schedule");
  return b.build(
    "mixed-day",
    "Mon 00–24: pushes following the working day (60% small, 25% large Linux, 15% macOS), two matrices, a nightly",
    MONDAY,
    MONDAY + 24 * HOUR,
  );
}

export const TRACES: readonly { name: string; make: (seed: number) => Trace }[] = [
  { name: "steady", make: steadyTrace },
  { name: "bursts", make: burstTrace },
  { name: "nightly", make: nightlyTrace },
  { name: "mixed-day", make: mixedDayTrace },
];
