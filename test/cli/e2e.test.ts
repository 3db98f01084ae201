import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { FAKE_ADMIN_PASSWORD, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { freePort } from "../helpers/free-port.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { memoryIo } from "./memory-io.js";
import { scanSink } from "../helpers/log-capture.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The operator's path end to end: provision against the fake Forgejo and fake nsc, start the real
 * dispatcher and autoscaler processes with the rendered configs, queue a job, and read it back with
 * `forgejo-nsc status`.
 */
describe("provision → daemons → status, end to end", () => {
  let forgejo: FakeForgejo;
  let nsc: FakeNsc;
  let tmp: { dir: string; cleanup: () => void };
  let out: string;
  let dispatcherUrl: string;
  let autoscalerUrl: string;
  const procs: { name: string; child: ChildProcess; log: () => string }[] = [];

  function startDaemon(name: "dispatcher" | "autoscaler", config: string) {
    let log = "";
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src", "bin", `${name}.ts`), "--config", config], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: tmp.dir, ...nsc.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const sink = scanSink(`cli-e2e-${name}`);
    const keep = (b: Buffer) => {
      log += b.toString();
      sink.write(b);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    child.once("exit", () => sink.close());
    procs.push({ name, child, log: () => log });
  }

  beforeAll(async () => {
    forgejo = await startFakeForgejo({ orgs: [{ name: "acme", owners: ["admin"] }], repos: [{ owner: "acme", name: "app" }] });
    tmp = tempDir("fnsc-cli-e2e-");
    nsc = createFakeNsc(join(tmp.dir, "nsc"));
    out = join(tmp.dir, "etc");
    const pw = join(tmp.dir, "pw");
    writeFileSync(pw, FAKE_ADMIN_PASSWORD);
    const [dp, ap] = [await freePort(), await freePort()];
    dispatcherUrl = `http://127.0.0.1:${dp}`;
    autoscalerUrl = `http://127.0.0.1:${ap}`;
    const m = memoryIo({ env: { PATH: process.env.PATH, ...nsc.env } });
    const code = await runCli(
      [
        "provision",
        "--out",
        out,
        "--forgejo-url",
        forgejo.url,
        "--scope",
        "repo:acme/app",
        "--forgejo-user",
        "admin",
        "--forgejo-password-file",
        pw,
        "--nsc",
        nsc.bin,
        "--nsc-token",
        "none",
        "--dispatcher-listen",
        `127.0.0.1:${dp}`,
        "--autoscaler-listen",
        `127.0.0.1:${ap}`,
        "--state-path",
        join(tmp.dir, "dispatcher.db"),
      ],
      m.io,
    );
    expect(m.stderr()).toBe("");
    expect(code).toBe(0);
    startDaemon("dispatcher", join(out, "dispatcher.yaml"));
    startDaemon("autoscaler", join(out, "autoscaler.yaml"));
    const up = async (url: string) => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok === true;
    await waitFor(async () => (await up(dispatcherUrl)) && (await up(autoscalerUrl)), {
      timeoutMs: 30_000,
      what: `both daemons to answer /healthz; logs:\n${procs.map((p) => p.log()).join("\n")}`,
    });
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null) {
        const exited = new Promise((r) => p.child.once("exit", r));
        p.child.kill("SIGTERM");
        await exited;
      }
    }
    nsc?.destroyAll();
    await forgejo?.close();
    tmp?.cleanup();
  });

  it("shows the queued job's runner from both daemons, and its history", async () => {
    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["namespace-profile-linux-medium"], name: "build" });
    const token = readFileSync(join(out, "dispatcher-token"), "utf8").trim();
    const status = async (args: string[]) => {
      const m = memoryIo({ env: { FORGEJO_NSC_TOKEN: token } });
      const code = await runCli(["status", "--dispatcher", dispatcherUrl, "--autoscaler", autoscalerUrl, ...args], m.io);
      return { code, out: m.stdout(), err: m.stderr() };
    };
    const logs = () => procs.map((p) => `--- ${p.name}\n${p.log()}`).join("\n");

    // The autoscaler polls, asks the dispatcher, the dispatcher runs the fake nsc: the runner shows up for the job.
    const seen = await waitFor(
      async () => {
        const r = await status(["--json"]);
        const doc = JSON.parse(r.out) as {
          ok: boolean;
          dispatcher: { runners?: { name: string; state: string; job: { id: number } | null }[] };
        };
        const runner = doc.dispatcher.runners?.find((x) => x.job?.id === job.id && x.state === "running");
        return doc.ok && runner ? runner : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: `a running runner for job ${job.id}; daemon logs:\n${logs()}` },
    );
    expect(nsc.calls("run").length).toBeGreaterThanOrEqual(1);

    const text = await status([]);
    expect(text.code).toBe(0);
    expect(text.err).toBe("");
    expect(text.out).toMatch(new RegExp(`${seen.name}\\s+running\\s+\\S+\\s+linux\\s+namespace-profile-linux-medium\\s+#${job.id}`));
    expect(text.out).toMatch(/^ {2}instance forgejo {2}\| {2}Forgejo 15\.0\.3 {2}\| {2}mode polling/m);
    expect(text.out).toContain("scope repo:acme/app");
    // The autoscaler lists the job as waiting, matched to the dispatcher's runner for it.
    expect(text.out).toMatch(
      new RegExp(`#${job.id}\\s+namespace-profile-linux-medium\\s+namespace-profile-linux-medium\\s+\\S+\\s+${seen.name}\\s`),
    );
    expect(text.out).not.toContain(token);

    const detail = await status(["runner", seen.name]);
    expect(detail.code).toBe(0);
    expect(detail.out).toMatch(/^History$/m);
    expect(detail.out).toMatch(/pending\s+launching/);
    expect(detail.out).toMatch(/launching\s+running/);
  }, 60_000);
});
