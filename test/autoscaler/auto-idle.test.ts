import { describe, expect, it } from "vitest";
import { ArrivalLog, autoMinIdle } from "../../src/autoscaler/auto-idle.js";

/** min_idle_auto (issue 13 item 3c): the jobs expected during one boot, rounded up, at most max. */
const MIN = 60_000;
const NOW = Date.parse("2026-06-01T12:00:00Z");
const A = { max: 3, windowMs: 30 * MIN, bootMs: 30_000 };
const every = (n: number, gapMs: number) => Array.from({ length: n }, (_, i) => NOW - i * gapMs);

describe("autoMinIdle", () => {
  it.each([
    { what: "no arrivals in the window", arrivals: [NOW - 31 * MIN], size: 0 },
    { what: "one arrival: 1 × 30 s / 30 min, rounded up", arrivals: [NOW - MIN], size: 1 },
    { what: "60 in 30 minutes (2 a minute × 0.5 min boot)", arrivals: every(60, 30_000 - 1), size: 1 },
    { what: "61 in 30 minutes", arrivals: every(61, 29_000), size: 2 },
    { what: "600 in 30 minutes: capped at max", arrivals: every(600, 2_000), size: 3 },
    { what: "an arrival in the future is not counted", arrivals: [NOW + 1], size: 0 },
  ])("$what → $size", ({ arrivals, size }) => {
    expect(autoMinIdle(arrivals, NOW, A)).toBe(size);
  });

  it("a longer boot wants a bigger pool for the same rate", () => {
    expect(autoMinIdle(every(20, MIN), NOW, { ...A, bootMs: 4 * MIN })).toBe(3);
    expect(autoMinIdle(every(20, MIN), NOW, { ...A, bootMs: 3 * MIN })).toBe(2);
  });
});

describe("ArrivalLog", () => {
  it("counts a job once, when first seen, per target, and forgets what is older than kept", () => {
    const log = new ArrivalLog();
    log.note(
      [
        { id: 1, target: "a" },
        { id: 2, target: "b" },
      ],
      NOW,
      60 * MIN,
    );
    log.note(
      [
        { id: 1, target: "a" },
        { id: 3, target: "a" },
      ],
      NOW + MIN,
      60 * MIN,
    );
    expect(log.arrivals("a")).toEqual([NOW, NOW + MIN]);
    expect(log.arrivals("b")).toEqual([NOW]);
    log.note([], NOW + 60 * MIN, 60 * MIN);
    expect(log.arrivals("a")).toEqual([NOW + MIN]);
    expect(log.arrivals("c")).toEqual([]);
  });
});
