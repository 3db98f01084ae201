import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startFakeDispatcher } from "../fakes/dispatcher/index.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { DISPATCHER_TOKEN, STATUS_TOKEN, freePort } from "./harness.js";
import { scanSink } from "../helpers/log-capture.js";

const ROOT = join(import.meta.dirname, "../..");
const tmp = tempDir("fnsc-as-bin-");
afterAll(() => tmp.cleanup());

describe("forgejo-nsc-autoscaler process", () => {
  it("serves, turns a queued job into a runner, and stops cleanly on SIGTERM", async () => {
    const forgejo = await startFakeForgejo({ version: "15.0.3" });
    const dispatcher = await startFakeDispatcher({ token: DISPATCHER_TOKEN });
    const port = await freePort();
    const tokenFile = join(tmp.dir, "dispatcher-token");
    writeFileSync(tokenFile, `${DISPATCHER_TOKEN}\n`);
    const file = join(tmp.dir, "autoscaler.yaml");
    writeFileSync(
      file,
      `listen: 127.0.0.1:${port}
dispatcher:
  url: ${dispatcher.url}
  token_file: ${tokenFile}
instances:
  - name: fj
    forgejo: { base_url: "${forgejo.url}", token: "\${FJ_TOKEN}" }
    poll_interval: 1s
    targets: [{ labels: [linux] }]
auth:
  tokens: [${STATUS_TOKEN}]
`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/bin/autoscaler.ts"), "--config", file], {
      cwd: ROOT,
      env: { ...process.env, FJ_TOKEN: FAKE_ADMIN_TOKEN },
    });
    let out = "";
    const sink = scanSink("autoscaler-bin");
    const keep = (d: Buffer | string) => {
      out += String(d);
      sink.write(d);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.once("exit", () => sink.close());
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, {
        what: "healthz",
        timeoutMs: 20_000,
      });
      const job = forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
      await waitFor(() => dispatcher.createdForJob(job.id).length === 1, { what: "dispatch", timeoutMs: 10_000 });
      const status = await fetch(`http://127.0.0.1:${port}/api/v1/status`, { headers: { authorization: `Bearer ${STATUS_TOKEN}` } });
      expect(status.status).toBe(200);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(out).toContain("shutting down");
      expect(out).toContain('"msg":"stopped"');
      expect(out).not.toContain(FAKE_ADMIN_TOKEN);
      expect(out).not.toContain(DISPATCHER_TOKEN);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await dispatcher.close();
      await forgejo.close();
    }
  });
});
