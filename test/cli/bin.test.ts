import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { FAKE_ADMIN_PASSWORD, startFakeForgejo } from "../fakes/forgejo/index.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { startStubDaemon } from "./stub-daemon.js";
import { scanSink } from "../helpers/log-capture.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "src", "bin", "cli.ts");

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real entry point in a child process, the way an operator does (through tsx instead of the build). */
function start(args: string[], env: Record<string, string> = {}, stdin?: string) {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  if (stdin !== undefined) child.stdin!.end(stdin);
  const r: Run = { code: null, signal: null, stdout: "", stderr: "" };
  const sink = scanSink("cli-bin");
  child.stdout!.on("data", (b: Buffer) => {
    r.stdout += b.toString();
    sink.write(b);
  });
  child.stderr!.on("data", (b: Buffer) => {
    r.stderr += b.toString();
    sink.write(b);
  });
  child.once("exit", () => sink.close());
  const done = new Promise<Run>((resolve) =>
    child.on("close", (code, signal) => {
      r.code = code;
      r.signal = signal;
      resolve(r);
    }),
  );
  return { child, r, done };
}

const run = (args: string[], env?: Record<string, string>, stdin?: string) => start(args, env, stdin).done;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe("the forgejo-nsc binary", () => {
  it("--version prints the package version and exits 0", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const r = await run(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`forgejo-nsc ${pkg.version}\n`);
  });

  it("exits 2 with usage for no command, an unknown command and an unknown flag, naming what was wrong", async () => {
    const [none, unknownCmd, badFlag] = await Promise.all([run([]), run(["frobnicate"]), run(["status", "--colour"])]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("forgejo-nsc: name a command");
    expect(none.stderr).toContain("forgejo-nsc status [flags]");
    expect(unknownCmd.code).toBe(2);
    expect(unknownCmd.stderr).toContain('forgejo-nsc: unknown command "frobnicate"');
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/^forgejo-nsc: unknown flag --colour\n/);
    expect(badFlag.stderr).toContain("Usage:");
  });

  it("help <command> prints that command's flags and exits 0", async () => {
    const r = await run(["help", "provision"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--forgejo-url <url>");
    expect(r.stdout).toContain("--nsc-token <mode>");
  });

  it("status exits 0 against answering daemons and 1 when one is down", async () => {
    const token = "bin-test-token-0123456789abcdef";
    const d = await startStubDaemon({
      token,
      handle: (req) => (req.path === "/api/v1/runners" ? { status: 200, body: { runners: [] } } : undefined),
    });
    const a = await startStubDaemon({
      token,
      handle: (req) => (req.path === "/api/v1/status" ? { status: 200, body: { instances: [] } } : undefined),
    });
    cleanups.push(d.close, a.close);
    const ok = await run(["status", "--dispatcher", d.url, "--autoscaler", a.url], { FORGEJO_NSC_TOKEN: token });
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("no runners in state pending, launching, running, finishing");
    expect(ok.stdout).toContain("no Forgejo instances configured");
    const bad = await run(["status", "--dispatcher", d.url, "--autoscaler", "http://127.0.0.1:1"], { FORGEJO_NSC_TOKEN: token });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("Autoscaler http://127.0.0.1:1: NOT REACHABLE");
    expect(bad.stdout + bad.stderr).not.toContain(token);
  });

  it("provision reads the password from a real stdin pipe and prints no secret", async () => {
    const forgejo = await startFakeForgejo();
    const tmp = tempDir("fnsc-bin-provision-");
    cleanups.push(async () => {
      await forgejo.close();
      tmp.cleanup();
    });
    const out = join(tmp.dir, "out");
    const r = await run(
      [
        "provision",
        "--out",
        out,
        "--forgejo-url",
        forgejo.url,
        "--forgejo-user",
        "admin",
        "--forgejo-password-stdin",
        "--nsc-token",
        "none",
      ],
      {},
      `${FAKE_ADMIN_PASSWORD}\n`,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(forgejo.callsTo("/api/v1/users/admin/tokens", "POST")).toHaveLength(1);
    const pat = readFileSync(join(out, "forgejo-token"), "utf8").trim();
    expect(pat).toBe(forgejo.state.tokens.at(-1)!.token);
    for (const secret of [
      FAKE_ADMIN_PASSWORD,
      pat,
      readFileSync(join(out, "dispatcher-token"), "utf8").trim(),
      readFileSync(join(out, "webhook-secret"), "utf8").trim(),
    ]) {
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
  });

  it("status --watch stops cleanly on SIGINT", async () => {
    const d = await startStubDaemon({
      handle: (req) => (req.path === "/api/v1/runners" ? { status: 200, body: { runners: [] } } : undefined),
    });
    cleanups.push(d.close);
    const p = start(["status", "--watch", "100ms", "--dispatcher", d.url, "--autoscaler", "none"]);
    await waitFor(() => d.requests.length >= 2, { what: "two refreshes", timeoutMs: 15_000 });
    p.child.kill("SIGINT");
    const r = await p.done;
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stdout.split("forgejo-nsc status at ").length - 1).toBeGreaterThanOrEqual(2);
  });
});
