import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { splitEnv } from "../../src/namespace/env-flags.js";
import { fakeNscSandbox } from "../helpers/fake-nsc-sandbox.js";

// Kept apart from env-flags.test.ts: this one runs the fake nsc executable, which the mutation
// runs (vitest.mutation.config.ts) leave out.
describe("flag-safe values survive nsc's real parsing rules", () => {
  const sandbox = fakeNscSandbox("fnsc-env-");

  it("delivers every value splitEnv sends as -e unchanged (sandbox.nsc nsc emulates pflag)", async () => {
    // Deterministic pseudo-random values over the characters that matter to pflag and CSV.
    let seed = 42;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
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
    const r = await execa(sandbox.nsc.bin, ["run", "-o", "json", "--image", "i", ...flags, "--", "true"], {
      env: sandbox.nsc.env,
      reject: false,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const sent = Object.fromEntries(Object.entries(env).filter(([k]) => !(k in viaScript)));
    expect(sandbox.nsc.instances()[0]!.env).toEqual(sent);
  });
});
