import { describe, expect, it } from "vitest";
import { Sightings } from "../../src/shared/sightings.js";

/** "Seen twice in a row before acting": looks are sequences of see() calls closed by keepOnly(). */
describe("Sightings", () => {
  /** Runs looks (each a list of keys) and returns, per look, the keys it confirmed. */
  function looks(s: Sightings, ...seq: string[][]): string[][] {
    return seq.map((keys) => {
      const confirmed = keys.filter((k) => s.see(k));
      s.keepOnly(keys);
      return confirmed;
    });
  }

  const cases: { what: string; seq: string[][]; confirmed: string[][] }[] = [
    { what: "one sighting confirms nothing", seq: [["a"]], confirmed: [[]] },
    { what: "two consecutive looks confirm", seq: [["a"], ["a"]], confirmed: [[], ["a"]] },
    { what: "a look without the key starts over", seq: [["a"], [], ["a"], ["a"]], confirmed: [[], [], [], ["a"]] },
    { what: "keys are counted apart", seq: [["a"], ["a", "b"], ["b"]], confirmed: [[], ["a"], ["b"]] },
    { what: "a confirmed key stays confirmed while seen", seq: [["a"], ["a"], ["a"]], confirmed: [[], ["a"], ["a"]] },
  ];
  it.each(cases)("$what", ({ seq, confirmed }) => {
    expect(looks(new Sightings(), ...seq)).toEqual(confirmed);
  });

  it("forget() starts a key over; size counts the keys remembered", () => {
    const s = new Sightings();
    s.see("a");
    s.see("b");
    expect(s.size).toBe(2);
    s.forget("a");
    expect(s.size).toBe(1);
    expect(s.see("a")).toBe(false);
    expect(s.see("b")).toBe(true);
  });

  it("needs as many consecutive looks as asked for", () => {
    expect(looks(new Sightings(3), ["a"], ["a"], ["a"])).toEqual([[], [], ["a"]]);
    expect(looks(new Sightings(1), ["a"])).toEqual([["a"]]);
  });

  it("takes any key type", () => {
    const s = new Sightings<number>();
    s.see(1);
    s.keepOnly(new Set([1]));
    expect(s.see(1)).toBe(true);
  });
});
