import { join } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EnvError, isFlagSafe, splitEnv } from "../../src/namespace/env-flags.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { tempDir } from "../helpers/tmp.js";

describe("isFlagSafe", () => {
  it.each([
    ["plain", true],
    ["a,b,c", true],
    ["https://h/?a=b", true],
    ["base64==", true],
    ["say \"hi\" there", true],
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

describe("flag-safe values survive nsc's real parsing rules", () => {
  let tmp: { dir: string; cleanup: () => void };
  let fake: FakeNsc;
  beforeEach(() => {
    tmp = tempDir("fnsc-env-");
    fake = createFakeNsc(join(tmp.dir, "nsc"));
  });
  afterEach(() => tmp.cleanup());

  it("delivers every value splitEnv sends as -e unchanged (fake nsc emulates pflag)", async () => {
    // Deterministic pseudo-random values over the characters that matter to pflag and CSV.
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const alphabet = ["a", "Z", "0", "=", ",", '"', "'", " ", "\n", "\r", "$", "\\", "/", "?", "&", "é"];
    const env: Record<string, string> = {};
    for (let i = 0; i < 300; i++) {
      let v = "";
      const len = Math.floor(rnd() * 12);
      for (let j = 0; j < len; j++) v += alphabet[Math.floor(rnd() * alphabet.length)];
      env[`V${i}`] = v;
    }
    const { flags, viaScript } = splitEnv(env);
    expect(Object.keys(viaScript).length).toBeGreaterThan(20);
    expect(flags.length / 2).toBeGreaterThan(100);
    const r = await execa(fake.bin, ["run", "-o", "json", "--image", "i", ...flags, "--", "true"], { env: fake.env, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    const sent = Object.fromEntries(Object.entries(env).filter(([k]) => !(k in viaScript)));
    expect(fake.instances()[0]!.env).toEqual(sent);
  });
});
