import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { formatDuration, parseDuration } from "../../src/config/duration.js";
import { ConfigError, loadConfigFile, parseConfig } from "../../src/config/load.js";
import { tempDir } from "../helpers/tmp.js";

describe("Go durations", () => {
  it.each([
    ["20m", 1_200_000],
    ["1h30m", 5_400_000],
    ["90s", 90_000],
    ["1.5h", 5_400_000],
    ["2d", 172_800_000],
    ["0", 0],
    ["500ms", 500],
    ["30m0s", 1_800_000],
  ])("%s", (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(["", "20", "m", "1x", "-5m", "1h 30m"])("rejects %j", (text) => expect(parseDuration(text)).toBeUndefined());
  it("formats like Go", () => {
    expect(formatDuration(5_400_000)).toBe("1h30m0s");
    expect(formatDuration(1_200_000)).toBe("20m0s");
    expect(formatDuration(45_000)).toBe("45s");
  });
});

describe("config loading", () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it("expands ${VAR} and reads *_file secrets", () => {
    const f = join(tmp.dir, "pat");
    writeFileSync(f, "file-secret-value\n");
    const c = parseConfig(dispatcherConfigSchema, `forgejo:\n  base_url: \${URL}\n  token_file: ${f}\n`, "t.yaml", {
      URL: "https://forge.example",
    });
    expect(c.forgejo.base_url).toBe("https://forge.example");
    expect(c.forgejo.token).toBe("file-secret-value");
  });

  it("lists every problem by key path, including missing variables and files", () => {
    const text = `listen: nowhere\nforgejo:\n  base_url: \${NOPE}\n  token_file: /does/not/exist\n  default_scope: {level: organization}\nnamespace:\n  duration: forever\n  max_parallel: 0\nbogus: 1\n`;
    let err: ConfigError | undefined;
    try {
      parseConfig(dispatcherConfigSchema, text, "bad.yaml", {});
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const joined = err!.problems.join("\n");
    expect(joined).toContain("forgejo.base_url: environment variable NOPE is not set");
    expect(joined).toContain("forgejo.token_file: cannot read /does/not/exist (ENOENT)");
    expect(joined).toContain('forgejo.default_scope.owner: required for level "organization"');
    expect(joined).toContain("namespace.duration:");
    expect(joined).toContain("namespace.max_parallel:");
    expect(joined).toContain("listen:");
    expect(joined).toMatch(/bogus/);
    // One problem per unresolved key: not also the schema's complaint about the empty value.
    expect(err!.problems.filter((p) => p.startsWith("forgejo.base_url:"))).toHaveLength(1);
    expect(err!.problems.filter((p) => p.startsWith("forgejo.token:"))).toHaveLength(0);
  });

  it("names an unreadable config file", () => {
    expect(() => loadConfigFile(dispatcherConfigSchema, join(tmp.dir, "missing.yaml"))).toThrow(/cannot read the config file \(ENOENT\)/);
  });

  it("keeps the documented defaults", () => {
    const c = parseConfig(dispatcherConfigSchema, "forgejo: {base_url: 'https://f.example', token: t}\n", "t.yaml", {});
    expect(c.listen).toBe("127.0.0.1:8080");
    expect(c.forgejo.instance_url).toBeUndefined();
    expect(c.namespace.duration).toBe(30 * 60_000);
    expect(c.namespace.max_parallel).toBe(4);
    expect(c.namespace.max_runners).toBe(20);
    expect(c.runner.name_prefix).toBe("nscloud-");
    expect(c.runner.executor).toBe("host");
  });
});

describe("config.example.yaml", () => {
  it("is valid against the schema", () => {
    const c = loadConfigFile(dispatcherConfigSchema, "config.example.yaml", { FORGEJO_TOKEN: "x" });
    expect(c.forgejo.base_url).toBe("https://forgejo.example.com");
  });
});

describe("namespace.token_file", () => {
  it("stays a path: nsc and the Compute API read it themselves", () => {
    const tmp = tempDir();
    const f = join(tmp.dir, "nsc-token.json");
    writeFileSync(f, '{"bearer_token": "x"}');
    const c = parseConfig(
      dispatcherConfigSchema,
      `forgejo: {base_url: 'https://f.example', token: t}\nnamespace: {token_file: ${f}}\n`,
      "t.yaml",
      {},
    );
    tmp.cleanup();
    expect(c.namespace.token_file).toBe(f);
  });
});
