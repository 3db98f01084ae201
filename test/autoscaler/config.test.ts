import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { autoscalerConfigSchema, configWarnings, dispatcherFor, targetName } from "../../src/config/autoscaler-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { MINIMAL_AUTOSCALER_YAML } from "../helpers/autoscaler-yaml.js";
import { configProblems } from "../helpers/config-problems.js";
import { tempDir } from "../helpers/tmp.js";
import { scanSink } from "../helpers/log-capture.js";

const ROOT = join(import.meta.dirname, "../..");
const tmp = tempDir("fnsc-as-config-");
afterAll(() => tmp.cleanup());

const problemsOf = (yaml: string, env: Record<string, string> = {}): string[] =>
  configProblems(() => parseConfig(autoscalerConfigSchema, yaml, "test.yaml", env));

/** The example with its /run/secrets files staged in a temp dir. */
function stagedExample(): { text: string; env: Record<string, string> } {
  const secrets = join(tmp.dir, "secrets");
  mkdirSync(secrets, { recursive: true });
  for (const f of ["forgejo-nsc-dispatcher-token", "forgejo-pat", "forgejo-webhook-secret", "gitea-dispatcher-token"])
    writeFileSync(join(secrets, f), `${f}-value-0123456789\n`);
  writeFileSync(join(secrets, "forgejo-nsc-autoscaler-tokens"), "# status readers\nstatus-token-0123456789abcdef\n");
  const text = readFileSync(join(ROOT, "autoscaler.example.yaml"), "utf8").replaceAll("/run/secrets/", `${secrets}/`);
  return { text, env: { GITEA_TOKEN: "gitea-pat-0123456789", GITEA_WEBHOOK_SECRET: "gitea-hook-secret-0123456789" } };
}

const minimal = MINIMAL_AUTOSCALER_YAML;

describe("autoscaler config", () => {
  it("the shipped example is valid and means what its comments say", () => {
    const { text, env } = stagedExample();
    const c = parseConfig(autoscalerConfigSchema, text, "autoscaler.example.yaml", env);
    expect(c.listen).toBe("127.0.0.1:8081");
    expect(c.instances.map((i) => i.name)).toEqual(["codeberg-like", "gitea"]);
    const [fj, gitea] = c.instances;
    expect(fj!.forgejo.token).toBe("forgejo-pat-value-0123456789");
    expect(fj!.webhook_secret).toBe("forgejo-webhook-secret-value-0123456789");
    expect(fj!.targets[0]!.min_idle_schedule[0]).toEqual({ cron: "0 8 * * 1-5", until: "0 18 * * 1-5", min_idle: 3 });
    expect(fj!.targets[0]!.ttl).toBe(30 * 60_000);
    expect(dispatcherFor(c, fj!)).toEqual({
      url: "http://127.0.0.1:8080",
      timeoutMs: 10_000,
      token: "forgejo-nsc-dispatcher-token-value-0123456789",
    });
    expect(dispatcherFor(c, gitea!)).toEqual({
      url: "http://127.0.0.1:8090",
      timeoutMs: 10_000,
      token: "gitea-dispatcher-token-value-0123456789",
    });
    expect(targetName(gitea!.targets[0]!)).toBe("ubuntu-latest");
    expect(gitea!.webhook_secret).toBe("gitea-hook-secret-0123456789");
    expect(c.auth.tokens).toEqual(["status-token-0123456789abcdef"]);
  });

  it("fills the documented defaults", () => {
    const c = parseConfig(autoscalerConfigSchema, minimal, "t", {});
    const i = c.instances[0]!;
    expect(c.listen).toBe("127.0.0.1:8081");
    expect(i.scope).toEqual({ level: "instance" });
    expect(i.poll_interval).toBe(10_000);
    expect(i.resync_interval).toBe(300_000);
    expect(i.disable_polling).toBe(false);
    expect(i.forgejo.timeout).toBe(15_000);
    expect(i.forgejo.kind).toBe("auto");
    expect(i.targets[0]).toMatchObject({ min_idle: 0, min_idle_schedule: [], timezone: "UTC", env: {} });
    expect(c.webhooks).toEqual({ body_limit: 1_048_576, debounce: 1000 });
    expect(dispatcherFor(c, i).timeoutMs).toBe(10_000);
    const hooked = parseConfig(autoscalerConfigSchema, `${minimal}    webhook: { url: "https://a.example/webhook/fj" }\n`, "t", {});
    expect(hooked.instances[0]!.webhook).toEqual({ url: "https://a.example/webhook/fj", content_type: "json", active: true });
  });

  it("lists every problem by key path", () => {
    const problems = problemsOf(`
listen: "0.0.0.0:8081"
instances:
  - name: "bad name"
    forgejo: { base_url: "not a url" }
    poll_interval: 100ms
    targets: []
  - name: ok
    forgejo: { base_url: "https://f.example", token: "x" }
    webhook: { url: "https://a.example/webhook/ok", content_type: xml }
    targets:
      - labels: ["has space"]
        min_idle: 5
        max_runners: 2
        timezone: Mars/Olympus
        min_idle_schedule:
          - { cron: "every day", min_idle: 1 }
          - { cron: "0 8 * * *", until: "0 18 * * *", duration: 1h, min_idle: 1 }
  - name: OK
    forgejo: { base_url: "https://f.example", token: "x" }
    targets: [{ labels: [a] }, { labels: [b], name: a }]
`);
    const expected = [
      "instances[0].name:",
      "instances[0].forgejo.base_url:",
      "instances[0].forgejo.token: required",
      "instances[0].targets: give at least one target",
      "instances[1].webhook.content_type:",
      "instances[1].targets[0].labels[0]: must not contain commas or whitespace",
      "instances[1].targets[0].timezone:",
      "instances[1].targets[0].max_runners: is 2, below the largest min_idle (5)",
      "instances[1].targets[0].min_idle_schedule[0].cron:",
      "instances[1].targets[0].min_idle_schedule[0].duration: set exactly one of duration",
      "instances[1].targets[0].min_idle_schedule[1].duration: set exactly one of duration",
      'instances[2].name: "OK" is already the name of instances[1]',
      'instances[2].targets[1].name: "a" is used by an earlier target',
      "instances[0].dispatcher.url: required when there is no top-level dispatcher.url",
      "auth.tokens: listen 0.0.0.0:8081 is not a loopback address",
    ];
    for (const e of expected)
      expect(
        problems.some((p) => p.startsWith(e)),
        `missing problem "${e}" in:\n${problems.join("\n")}`,
      ).toBe(true);
  });

  it("max_runners below the warm pool, and poll_interval too small, are refused with the reason", () => {
    const problems = problemsOf(
      minimal
        .replace("- labels: [linux]", "- labels: [linux]\n        min_idle: 3\n        max_runners: 2")
        .replace("    targets:", "    poll_interval: 200ms\n    targets:"),
    );
    expect(problems).toContain("instances[0].targets[0].max_runners: is 2, below the largest min_idle (3); the warm pool could never fill");
    expect(problems).toContain("instances[0].poll_interval: must be at least 1s (each poll is several API calls)");
  });

  it("reads secrets from files and environment variables, and names a missing one", () => {
    const tokenFile = join(tmp.dir, "pat");
    writeFileSync(tokenFile, "pat-from-file\n");
    const yaml = minimal.replace('token: "pat"', `token_file: "${tokenFile}"`) + "    webhook_secret: ${HOOK_SECRET}\n";
    const c = parseConfig(autoscalerConfigSchema, yaml, "t", { HOOK_SECRET: "s3cret" });
    expect(c.instances[0]!.forgejo.token).toBe("pat-from-file");
    expect(c.instances[0]!.webhook_secret).toBe("s3cret");
    expect(problemsOf(yaml, {})).toContain("instances[0].webhook_secret: environment variable HOOK_SECRET is not set");
  });

  it("warns about targets with the same label names and about unsigned webhooks", () => {
    const c = parseConfig(
      autoscalerConfigSchema,
      minimal.replace(
        "- labels: [linux]",
        "- labels: [linux:host, docker]\n      - labels: [docker, linux:docker://node:20]\n        name: second",
      ),
      "t",
      {},
    );
    const w = configWarnings(c);
    expect(w.some((x) => x.startsWith("instances[0].targets[1]: same label names as targets[0] (docker,linux)"))).toBe(true);
    expect(w.some((x) => x.includes("no webhook_secret"))).toBe(true);
  });
});

function runBin(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/bin/autoscaler.ts"), ...args], {
      cwd: ROOT,
      env: { ...process.env, GITEA_TOKEN: "t", GITEA_WEBHOOK_SECRET: "s" },
    });
    let stdout = "";
    let stderr = "";
    const sink = scanSink("autoscaler-check");
    child.stdout.on("data", (d) => {
      stdout += String(d);
      sink.write(d);
    });
    child.stderr.on("data", (d) => {
      stderr += String(d);
      sink.write(d);
    });
    child.once("exit", () => sink.close());
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("forgejo-nsc-autoscaler --check", () => {
  it("validates, prints a summary and exits 0", async () => {
    const file = join(tmp.dir, "ok.yaml");
    writeFileSync(file, minimal);
    const r = await runBin(["--config", file, "--check"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${file}: configuration is valid`);
    expect(r.stdout).toContain("fj: https://forgejo.example.com (instance), poll every 10s, targets: linux, webhook at /webhook/fj");
  });

  it("lists every problem and exits 1; no config is a usage error (2)", async () => {
    const file = join(tmp.dir, "bad.yaml");
    writeFileSync(file, minimal.replace("name: fj", "name: 'f j'").replace("labels: [linux]", "labels: []"));
    const r = await runBin(["--config", file, "--check"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("instances[0].name:");
    expect(r.stderr).toContain("instances[0].targets[0].labels: give at least one label");
    const u = await runBin([]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain("usage: forgejo-nsc-autoscaler --config <file> [--check]");
  });
});
