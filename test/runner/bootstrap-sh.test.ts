import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { buildShBootstrap, publicCredentials } from "../../src/runner/bootstrap-sh.js";
import type { ShBootstrapOptions } from "../../src/runner/bootstrap-sh.js";
import { runnerSandbox } from "../helpers/runner-sandbox.js";
import { waitFor } from "../helpers/wait.js";

const SECRET = "s3cr3t-Runner-T0ken-9f8e7d";

const sandbox = runnerSandbox("fnsc-boot-");

/** Runs the script the way the container does: /bin/sh -c <script>, the secret in the environment. */
function run(script: string, env: Record<string, string> = { FORGEJO_RUNNER_TOKEN: SECRET }) {
  return execa("/bin/sh", ["-c", script], {
    env: { ...sandbox.runner.env, FAKE_RUNNER_RECORD_ENV: "WEIRD,DQ", ...env },
    extendEnv: false,
    reject: false,
    cwd: sandbox.dir,
  });
}

function hostile(): Pick<ShBootstrapOptions, "runnerName" | "labels" | "scriptEnv" | "jobHandle"> {
  return {
    runnerName: `evil'; touch ${sandbox.marker}; echo '`,
    labels: [
      `lab$(touch ${sandbox.marker})`,
      "back`touch " + sandbox.marker + "`tick",
      `quote'n"d:host`,
      "new\nline",
      "ubuntu:docker://node:20",
    ],
    scriptEnv: {
      WEIRD: `a=b,c"d'e$(touch ${sandbox.marker})\`touch ${sandbox.marker}\`\nline2 $HOME \\n`,
      DQ: '"quoted"',
    },
    jobHandle: `h'; touch ${sandbox.marker}; '`,
  };
}

const RESOLVED = [`lab$(touch MARK):host`, "back`touch MARK`tick:host", `quote'n"d:host`, "new\nline:host", "ubuntu:docker://node:20"];
const resolved = () => RESOLVED.map((l) => l.replaceAll("MARK", sandbox.marker));

describe("buildShBootstrap (token mode, Forgejo < 15)", () => {
  it("registers with the token from the environment, then runs one job, with hostile values inert", async () => {
    const workdir = join(sandbox.dir, "work dir");
    const h = hostile();
    const script = buildShBootstrap({
      ...h,
      executor: "host",
      mode: "one-job",
      workdir,
      credentials: publicCredentials({
        mode: "token",
        instanceUrl: `https://forgejo.example/$(touch ${sandbox.marker})`,
        registrationToken: SECRET,
      }),
    });
    expect(script).not.toContain(SECRET);
    expect(script.startsWith("set -eu\n")).toBe(true);

    const r = await run(script);
    expect(r.stderr).not.toContain(SECRET);
    expect(r.exitCode).toBe(0);
    expect(existsSync(sandbox.marker)).toBe(false);

    const calls = sandbox.runner.calls();
    expect(calls.map((c) => c.command)).toEqual(["register", "one-job"]);
    const [reg, job] = calls as [(typeof calls)[0], (typeof calls)[0]];
    expect(reg.problems).toEqual([]);
    expect(reg.argv).toEqual([
      "register",
      "--no-interactive",
      "--instance",
      `https://forgejo.example/$(touch ${sandbox.marker})`,
      "--token",
      SECRET,
      "--name",
      h.runnerName,
      "--labels",
      resolved().join(","),
      "--config",
      "runner.yaml",
    ]);
    expect(reg.cwd).toBe(workdir);
    expect(reg.env.WEIRD).toBe(h.scriptEnv.WEIRD);
    expect(reg.env.DQ).toBe('"quoted"');

    expect(job.argv).toEqual(["one-job", "--config", "runner.yaml"]);
    expect(job.problems).toEqual([]);
    expect(job.env.FORGEJO_RUNNER_TOKEN).toBeUndefined();

    const yaml = parseYaml(job.config!.content!) as {
      runner: Record<string, unknown>;
      cache: Record<string, unknown>;
      host: Record<string, unknown>;
    };
    expect(yaml.runner.capacity).toBe(1);
    expect(yaml.runner.labels).toEqual(resolved());
    expect(yaml.runner.fetch_interval).toBe("2s");
    expect(yaml.runner.report_interval).toBe("1s");
    expect(yaml.cache.enabled).toBe(false);
    expect(yaml.host.workdir_parent).toBe(`${workdir}/work`);
  });

  it("runs the daemon instead of one job in daemon mode, and uses the cache path", async () => {
    const workdir = join(sandbox.dir, "w");
    const cachePath = join(sandbox.dir, "cache");
    const script = buildShBootstrap({
      runnerName: "nscloud-abc",
      labels: ["linux"],
      executor: "host",
      mode: "daemon",
      workdir,
      cachePath,
      credentials: { mode: "token", instanceUrl: "https://f.example" },
      scriptEnv: {},
    });
    const r = await run(script);
    expect(r.exitCode).toBe(0);
    const [, daemon] = sandbox.runner.calls();
    expect(daemon!.argv).toEqual(["daemon", "--config", "runner.yaml"]);
    const yaml = parseYaml(daemon!.config!.content!) as { cache: Record<string, unknown> };
    expect(yaml.cache).toEqual({ enabled: true, dir: `${cachePath}/actcache` });
    expect(existsSync(cachePath)).toBe(true);
  });

  it("passes forgejo-runner's exit status on", async () => {
    const script = buildShBootstrap({
      runnerName: "r",
      labels: ["x"],
      executor: "host",
      mode: "one-job",
      workdir: join(sandbox.dir, "w"),
      credentials: { mode: "token", instanceUrl: "https://f" },
      scriptEnv: {},
    });
    const r = await run(script, { FORGEJO_RUNNER_TOKEN: SECRET, FAKE_RUNNER_EXIT_CODE: "3" });
    expect(r.exitCode).toBe(3);
  });

  it("stops with a clear message when the token variable is missing", async () => {
    const script = buildShBootstrap({
      runnerName: "r",
      labels: ["x"],
      executor: "host",
      mode: "one-job",
      workdir: join(sandbox.dir, "w"),
      credentials: { mode: "token", instanceUrl: "https://f" },
      scriptEnv: {},
    });
    const r = await run(script, {});
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("FORGEJO_RUNNER_TOKEN is not set");
    expect(sandbox.runner.calls()).toEqual([]);
  });
});

describe("buildShBootstrap (ephemeral mode, Forgejo >= 15)", () => {
  it("writes the runner token to a 0600 file, unsets the variable and runs one-job pinned to the handle", async () => {
    const workdir = join(sandbox.dir, "eph work");
    const h = hostile();
    const uuid = `6b1f0c4e-uuid'$(touch ${sandbox.marker})`;
    const script = buildShBootstrap({
      ...h,
      executor: "host",
      mode: "one-job",
      workdir,
      credentials: publicCredentials({ mode: "ephemeral", instanceUrl: "https://forgejo.example", uuid, token: SECRET }),
    });
    expect(script).not.toContain(SECRET);

    const r = await run(script);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toContain(SECRET);
    expect(existsSync(sandbox.marker)).toBe(false);

    const calls = sandbox.runner.calls();
    expect(calls).toHaveLength(1);
    const job = calls[0]!;
    expect(job.problems).toEqual([]);
    const tokenPath = join(workdir, ".runner-token");
    const labelArgs = resolved().flatMap((l) => ["--label", l]);
    expect(job.argv).toEqual([
      "one-job",
      "--config",
      "runner.yaml",
      "--url",
      "https://forgejo.example",
      "--uuid",
      uuid,
      "--token-url",
      `file://${tokenPath.replace(" ", "%20")}`,
      ...labelArgs,
      "--handle",
      h.jobHandle,
      "--wait",
    ]);
    expect(job.labels).toEqual(resolved());
    // Handed over through a FIFO: the runner read it once, and nothing is left on disk for job steps.
    expect(job.tokenFile).toMatchObject({ path: tokenPath, content: SECRET, mode: "600", fifo: true });
    expect(job.env.FORGEJO_RUNNER_TOKEN).toBeUndefined();
    expect(job.env.WEIRD).toBe(h.scriptEnv.WEIRD);
    await waitFor(() => !existsSync(tokenPath), { what: "the token FIFO to be removed" });
    expect(readdirSync(workdir).sort()).toEqual(["runner.yaml"]);
  });

  it("keeps a pinned one-job polling when the first fetch brings no task (upstream exits 2 without --wait)", async () => {
    const script = buildShBootstrap({
      runnerName: "r",
      labels: ["x"],
      executor: "host",
      mode: "one-job",
      workdir: join(sandbox.dir, "w"),
      credentials: { mode: "ephemeral", instanceUrl: "https://f", uuid: "u-1" },
      jobHandle: "handle-1",
      scriptEnv: {},
    });
    const r = await run(script, { FORGEJO_RUNNER_TOKEN: SECRET, FAKE_RUNNER_FIRST_FETCH_EMPTY: "1" });
    expect(r.stderr).not.toContain("exit 2");
    expect(r.exitCode).toBe(0);
    expect(sandbox.runner.calls()[0]!.argv).toEqual(expect.arrayContaining(["--handle", "handle-1", "--wait"]));
  });

  it("waits for a job when there is no handle, and runs the daemon without one", async () => {
    const base = {
      runnerName: "r",
      labels: ["x"],
      executor: "docker://node:22",
      workdir: join(sandbox.dir, "w"),
      credentials: { mode: "ephemeral" as const, instanceUrl: "https://f", uuid: "u-1" },
      scriptEnv: {},
    };
    expect((await run(buildShBootstrap({ ...base, mode: "one-job" }))).exitCode).toBe(0);
    expect((await run(buildShBootstrap({ ...base, mode: "daemon", jobHandle: "ignored" }))).exitCode).toBe(0);
    const [oneJob, daemon] = sandbox.runner.calls();
    expect(oneJob!.argv.slice(-3)).toEqual(["--label", "x:docker://node:22", "--wait"]);
    expect(daemon!.argv[0]).toBe("daemon");
    expect(daemon!.argv).not.toContain("--handle");
    expect(daemon!.argv).not.toContain("--wait");
    // one-job reads its token once, through a FIFO; a daemon may read it again: a private file.
    expect(oneJob!.tokenFile).toMatchObject({ content: SECRET, fifo: true });
    expect(daemon!.tokenFile).toMatchObject({ content: SECRET, mode: "600", fifo: false });
  });
});

describe("buildShBootstrap input checks", () => {
  const base: ShBootstrapOptions = {
    runnerName: "r",
    labels: ["x"],
    executor: "host",
    mode: "one-job",
    workdir: "/w",
    credentials: { mode: "token", instanceUrl: "https://f" },
    scriptEnv: {},
  };
  it("refuses a relative workdir, a bad env name, and the token in the script env", () => {
    expect(() => buildShBootstrap({ ...base, workdir: "w" })).toThrow(/absolute path/);
    expect(() => buildShBootstrap({ ...base, scriptEnv: { "BAD-NAME": "x" } })).toThrow(/BAD-NAME/);
    expect(() => buildShBootstrap({ ...base, scriptEnv: { FORGEJO_RUNNER_TOKEN: "x" } })).toThrow(/never the script text/);
  });
});
