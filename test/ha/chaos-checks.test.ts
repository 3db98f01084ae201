import { describe, expect, it } from "vitest";
import { effectsOutsideTerms, failoverTimes, median, missing, repeated } from "../chaos/checks.js";
import type { Effect, Term } from "../chaos/checks.js";

/** The conclusions of the replica chaos test, decided from plain data. */
const terms: Term[] = [
  { epoch: 1, holder: "a", acquiredAt: 1000 },
  { epoch: 2, holder: "b", acquiredAt: 5000 },
  { epoch: 3, holder: "a", acquiredAt: 9000 },
];

describe("effectsOutsideTerms", () => {
  const cases: { name: string; effect: Effect; heldBy: string | null | "ok" }[] = [
    { name: "within the holder's first term", effect: { holder: "a", what: "run", at: 1000 }, heldBy: "ok" },
    { name: "the last moment before the next term", effect: { holder: "a", what: "run", at: 4999 }, heldBy: "ok" },
    { name: "after another replica took over", effect: { holder: "a", what: "destroy", at: 5000 }, heldBy: "b" },
    { name: "the new holder right away", effect: { holder: "b", what: "run", at: 5000 }, heldBy: "ok" },
    { name: "the old holder again in its later term", effect: { holder: "a", what: "run", at: 9500 }, heldBy: "ok" },
    { name: "before anybody held it", effect: { holder: "a", what: "run", at: 10 }, heldBy: null },
    { name: "a replica that never held it", effect: { holder: "c", what: "run", at: 6000 }, heldBy: "b" },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = effectsOutsideTerms([c.effect], terms);
      if (c.heldBy === "ok") expect(v).toEqual([]);
      else expect(v).toEqual([{ effect: c.effect, heldBy: c.heldBy }]);
    });
  }
});

describe("failoverTimes", () => {
  it("measures from the outage to the next term of another holder", () => {
    expect(
      failoverTimes(
        [
          { holder: "a", at: 3000 },
          { holder: "b", at: 7000 },
          { holder: "a", at: 9500 },
        ],
        terms,
      ),
    ).toEqual([2000, 2000, undefined]);
  });
  it("a term of the same holder is no failover", () => {
    expect(
      failoverTimes(
        [{ holder: "a", at: 4000 }],
        [
          { epoch: 2, holder: "a", acquiredAt: 4500 },
          { epoch: 3, holder: "c", acquiredAt: 6000 },
        ],
      ),
    ).toEqual([2000]);
  });
});

describe("median, repeated, missing", () => {
  it.each([
    [[], Number.NaN],
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
  ])("median(%j) = %d", (xs, m) => {
    expect(median(xs)).toBe(m);
  });
  it("repeated keys with their counts; missing values", () => {
    expect([...repeated(["x", "y", "x", "z", "x", "y"])]).toEqual([
      ["x", 3],
      ["y", 2],
    ]);
    expect(missing(["a", "b", "c"], ["b"])).toEqual(["a", "c"]);
  });
});
