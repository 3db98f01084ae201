import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { formatReport, readLedger, scanLogDirectory } from "../helpers/secret-scan.js";
import { KNOWN_TEST_SECRETS, LEDGER_SUBDIR, LOGS_SUBDIR, recordSecrets, SCAN_DIR_ENV } from "../helpers/secrets.js";
import { removeTree, tempDir } from "../helpers/tmp.js";
import { ROOT } from "./caddy.js";

const PLANTED = "fakeadminpat0123456789abcdef0123456789abcd";

function scanDirWith(files: Record<string, string>): { dir: string; cleanup: () => void } {
  const t = tempDir("fnsc-scan-unit-");
  mkdirSync(join(t.dir, LOGS_SUBDIR));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(t.dir, LOGS_SUBDIR, name), text);
  return t;
}

function testSources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testSources(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

describe("the whole-suite secret scan", () => {
  const cleanups: (() => void)[] = [];
  afterAll(() => cleanups.forEach((c) => c()));

  it("finds a planted secret, says where, and never prints it", () => {
    const t = scanDirWith({
      "clean.log": '{"level":30,"msg":"dispatch accepted","runners":["nscloud-abc"]}\n',
      "leaky.log": `{"level":30,"msg":"started"}\n{"level":50,"msg":"Forgejo said 401 for token ${PLANTED}"}\n`,
    });
    cleanups.push(t.cleanup);
    const report = scanLogDirectory(t.dir, KNOWN_TEST_SECRETS);
    expect(report.files).toBe(2);
    expect(report.lines).toBe(3);
    expect(report.findings).toHaveLength(1);
    expect(report.findings[0]).toMatchObject({
      file: join(LOGS_SUBDIR, "leaky.log"),
      line: 2,
      kind: "value",
      what: "secret from test/fakes/forgejo/index.ts FAKE_ADMIN_TOKEN",
    });
    const text = formatReport(report);
    expect(text).toContain("1 leak(s) found");
    expect(text).toContain("logs/leaky.log:2");
    expect(text).toContain("<secret from test/fakes/forgejo/index.ts FAKE_ADMIN_TOKEN>");
    expect(text).not.toContain(PLANTED);
  });

  it("reports a clean directory as clean, with the counts", () => {
    const t = scanDirWith({ "a.log": "one\ntwo\n", "b.log": '{"token":"[redacted]","req":{"headers":{"Authorization":[]}}}\n' });
    cleanups.push(t.cleanup);
    const report = scanLogDirectory(t.dir, KNOWN_TEST_SECRETS);
    expect(report).toMatchObject({ files: 2, lines: 3, findings: [] });
    expect(formatReport(report)).toMatch(/^secret scan: 2 log files, 3 lines \(0\.0 MiB\), \d+ secrets: no secret found$/);
  });

  it("flags a secret-named field with an unredacted value, whatever the value looks like", () => {
    const t = scanDirWith({
      "fields.log": [
        '{"msg":"registered","runner":{"name":"r1","token":"0aee2d3ec61b87773ce6a012a82b8f86bd8c9f00"}}',
        '{"msg":"fine","token":"[redacted]","password":"[redacted]","authorization":"Bearer [redacted]"}',
        '{"request":{"headers":{"Authorization":["Bearer 51af6d82f459bd2a9e02195c"]}}}',
        '{"request":{"headers":{"Authorization":["REDACTED"]}}}',
        '{"msg":"token_file set","token_file":"/run/secrets/pat","tokens":3}',
      ].join("\n"),
    });
    cleanups.push(t.cleanup);
    const report = scanLogDirectory(t.dir, []);
    expect(report.findings.map((f) => [f.line, f.kind, f.what])).toEqual([
      [1, "field", 'field "token" carries an unredacted value'],
      [3, "field", 'field "Authorization" carries an unredacted value'],
    ]);
    expect(formatReport(report)).not.toContain("0aee2d3ec61b87773ce6a012a82b8f86bd8c9f00");
    expect(formatReport(report)).not.toContain("51af6d82f459bd2a9e02195c");
  });

  it("looks for the secrets recorded at run time in the ledger", () => {
    const t = scanDirWith({ "x.log": "runner token is 9f0c4b1e2d3a5f6e7d8c9b0a1f2e3d4c5b6a7f80 here\n" });
    cleanups.push(t.cleanup);
    const before = process.env[SCAN_DIR_ENV];
    process.env[SCAN_DIR_ENV] = t.dir;
    try {
      recordSecrets(["9f0c4b1e2d3a5f6e7d8c9b0a1f2e3d4c5b6a7f80", undefined, ""]);
    } finally {
      if (before === undefined) delete process.env[SCAN_DIR_ENV];
      else process.env[SCAN_DIR_ENV] = before;
    }
    const ledger = readLedger(t.dir);
    expect(ledger.map((s) => s.value)).toEqual(["9f0c4b1e2d3a5f6e7d8c9b0a1f2e3d4c5b6a7f80"]);
    expect(existsSync(join(t.dir, LEDGER_SUBDIR))).toBe(true);
    const report = scanLogDirectory(t.dir, ledger);
    expect(report.findings).toHaveLength(1);
    expect(report.findings[0]?.what).toMatch(/^secret from recorded at run time/);
  });

  it("refuses secrets too short to scan for", () => {
    const t = scanDirWith({});
    cleanups.push(t.cleanup);
    expect(() => scanLogDirectory(t.dir, [{ value: "abc", source: "somewhere" }])).toThrow(
      /secret from somewhere is shorter than 8 characters/,
    );
  });

  it("lists every secret constant the test files declare, with the value they declare", () => {
    const sources = testSources(join(ROOT, "test"));
    const known = new Set(KNOWN_TEST_SECRETS.map((s) => s.value));
    // Every value still appears in each file named as its source (so a changed constant is noticed).
    for (const s of KNOWN_TEST_SECRETS) {
      for (const file of s.source.match(/test\/\S+\.ts/g) ?? []) {
        const path = join(ROOT, file);
        expect(existsSync(path), `${file}, named as the source of a test secret, is gone; update test/helpers/secrets.ts`).toBe(true);
        expect(
          readFileSync(path, "utf8").includes(s.value),
          `${file} no longer contains the secret listed for it; update test/helpers/secrets.ts`,
        ).toBe(true);
      }
    }
    // Every constant named like a secret in a test file is in the scan.
    const missing: string[] = [];
    for (const file of sources) {
      for (const m of readFileSync(file, "utf8").matchAll(
        /\bconst\s+([A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD)[A-Z0-9_]*)\s*=\s*"([^"]{8,})"/g,
      )) {
        if (!known.has(m[2] as string)) missing.push(`${relative(ROOT, file)} ${m[1]}`);
      }
    }
    expect(missing, "secret constants missing from KNOWN_TEST_SECRETS in test/helpers/secrets.ts").toEqual([]);
  });
});

/**
 * The real thing: a small vitest run under test/global-setup.ts whose only test logs through
 * captureLogger. With a known secret in the line the run must exit non-zero; without, zero.
 * The project lives under .tmp/ (git-ignored) so it resolves vitest from this checkout.
 */
describe("the global setup fails a vitest run whose logs hold a secret", () => {
  const base = join(ROOT, ".tmp");
  mkdirSync(base, { recursive: true });
  const project = mkdtempSync(join(base, "secret-scan-run-"));
  afterAll(() => removeTree(project));

  function runVitest(line: string): Promise<{ code: number | null; out: string }> {
    const dir = mkdtempSync(join(project, "p-"));
    mkdirSync(join(dir, "test"));
    writeFileSync(
      join(dir, "vitest.config.mjs"),
      `export default { test: { include: ["test/**/*.test.ts"], globalSetup: [${JSON.stringify(join(ROOT, "test/global-setup.ts"))}] } };\n`,
    );
    writeFileSync(
      join(dir, "test", "log.test.ts"),
      `import { it } from "vitest";
import { captureLogger } from ${JSON.stringify(join(ROOT, "test/helpers/log-capture.ts"))};
it("logs one line", () => { captureLogger().logger.warn(${JSON.stringify(line)}); });
`,
    );
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env))
      if (!k.startsWith("VITEST") && k !== SCAN_DIR_ENV && k !== "NODE_OPTIONS" && k !== "FORGEJO_NSC_KEEP_TEST_LOGS") env[k] = v;
    return new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        [join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--root", dir, "--config", join(dir, "vitest.config.mjs")],
        {
          cwd: dir,
          env: { ...env, NO_COLOR: "1" },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let out = "";
      child.stdout.on("data", (b: Buffer) => (out += b.toString()));
      child.stderr.on("data", (b: Buffer) => (out += b.toString()));
      child.on("close", (code) => {
        // A leak keeps the scan directory for inspection; this one was planted on purpose.
        const kept = /The logs are kept in (\S+?)\./.exec(out)?.[1];
        if (kept && kept.includes("forgejo-nsc-test-logs-")) removeTree(kept);
        resolve({ code, out });
      });
    });
  }

  it("exits 1 and names the file and line when a test secret was logged", async () => {
    const r = await runVitest(`calling Forgejo with ${PLANTED}`);
    expect(r.out).toMatch(/secret scan: 1 log files, 1 lines .* 1 leak\(s\) found/);
    expect(r.out).toMatch(/logs\/capture-\d+\.log:1: secret from test\/fakes\/forgejo\/index\.ts FAKE_ADMIN_TOKEN/);
    expect(r.out).not.toContain(PLANTED);
    expect(r.code).toBe(1);
  }, 60_000);

  it("exits 0 and prints the counts when the logs are clean", async () => {
    const r = await runVitest("calling Forgejo with [redacted]");
    expect(r.out).toMatch(/secret scan: 1 log files, 1 lines \(0\.0 MiB\), \d+ secrets: no secret found/);
    expect(r.code).toBe(0);
  }, 60_000);
});
