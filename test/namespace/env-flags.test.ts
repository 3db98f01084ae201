import { describe, expect, it } from "vitest";
import { EnvError, isFlagSafe, splitEnv } from "../../src/namespace/env-flags.js";

describe("isFlagSafe", () => {
  it.each([
    ["plain", true],
    ["a,b,c", true],
    ["https://h/?a=b", true],
    ["base64==", true],
    ['say "hi" there', true],
    ["line1\nline2", true],
    ["", true],
    ["https://h/?a=b,c", false],
    ['{"k":"v=1"}', false],
    ['"quoted', false],
    ['quoted"', false],
    ["a=1\nb", false],
  ])("%j → %s", (value, safe) => {
    expect(isFlagSafe(value)).toBe(safe);
  });
});

describe("splitEnv", () => {
  it("puts safe values in -e flags and the rest in the script, keys sorted", () => {
    expect(splitEnv({ B: "2", A: "x=1,y=2", C: "https://h/?q=1" })).toEqual({
      flags: ["-e", "B=2", "-e", "C=https://h/?q=1"],
      viaScript: { A: "x=1,y=2" },
    });
  });

  it("rejects invalid names, NUL bytes, and unsafe values of flag-only keys", () => {
    expect(() => splitEnv({ "1BAD": "x" })).toThrow(EnvError);
    expect(() => splitEnv({ "A-B": "x" })).toThrow(/letters, digits and underscores/);
    expect(() => splitEnv({ A: "x\0y" })).toThrow(/NUL/);
    expect(() => splitEnv({ TOKEN: "a=b,c" }, { flagOnly: ["TOKEN"] })).toThrow(/must not be written into the script/);
    expect(splitEnv({ TOKEN: "abc=" }, { flagOnly: ["TOKEN"] }).flags).toEqual(["-e", "TOKEN=abc="]);
  });
});

describe("splitEnv ordering and errors", () => {
  it("emits flags in key order whatever the object's order", () => {
    expect(splitEnv({ B: "2", A: "1", C: "3" }).flags).toEqual(["-e", "A=1", "-e", "B=2", "-e", "C=3"]);
  });

  it("throws EnvError by name", () => {
    try {
      splitEnv({ "9": "x" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EnvError);
      expect((err as Error).name).toBe("EnvError");
    }
  });
});
