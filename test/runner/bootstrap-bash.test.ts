import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildBashBootstrap, buildDetachedBashLauncher, publicCredentials, runnerYaml } from "../../src/runner/bootstrap-bash.js";
import type { BashBootstrapOptions } from "../../src/runner/bootstrap-bash.js";
import { heredocToFile } from "../../src/runner/quote-bash.js";
import { FAKE_RUNNER_DIR, createFakeRunner } from "../fakes/forgejo-runner/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeRunner } from "../fakes/forgejo-runner/index.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

const SECRET = "macOS-s3cr3t-T0ken-77aa";

let tmp: { dir: string; cleanup: () => void };
let runner: FakeRunner;
let marker: string;

beforeEach(() => {
  tmp = tempDir("fnsc-bash-");
  runner = createFakeRunner(join(tmp.dir, "fake"));
  marker = join(tmp.dir, "pwned");
});
afterEach(() => tmp.cleanup());

/** As the Compute API application runs it: /bin/bash -c <script> with the env (login shell skipped). */
function run(script: string, env: Record<string, string> = { FORGEJO_RUNNER_TOKEN: SECRET }, path = runner.env.PATH!) {
  return execa("/bin/bash", ["-c", script], { env: { ...runner.env, PATH: path, HOME: tmp.dir, ...env }, extendEnv: false, reject: false, cwd: tmp.dir });
}

function hostile(): Pick<BashBootstrapOptions, "runnerName" | "labels" | "jobHandle"> {
  return {
    runnerName: `evil'; touch ${marker}; echo '`,
    labels: [`lab$(touch ${marker})`, "back`touch " + marker + "`tick", `quote'n"d:host`, "macos-\u2028ls", "xcode:host"],
    jobHandle: `h'; touch ${marker}; '`,
  };
}

function base(workdir: string): Omit<BashBootstrapOptions, "credentials"> {
  // Never the real release URL: a test must not reach out of this machine.
  return { ...hostile(), executor: "host", mode: "one-job", workdir, runnerVersion: "12.6.4", downloadUrl: "http://127.0.0.1:9/no-download-in-tests" };
}

describe("buildBashBootstrap", () => {
  it("token mode: registers with the token from the environment, unsets it, runs one job; hostile values stay inert", async () => {
    const workdir = join(tmp.dir, "work dir $HOME");
    const script = buildBashBootstrap({
      ...base(workdir),
      credentials: publicCredentials({ mode: "token", instanceUrl: `https://forgejo.example/$(touch ${marker})`, registrationToken: SECRET }),
    });
    expect(script).not.toContain(SECRET);
    const r = await run(script);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(marker)).toBe(false);
    expect(r.stderr + r.stdout).not.toContain(SECRET);
    expect(r.stderr).toContain("forgejo-runner exited with status 0");

    const calls = runner.calls();
    expect(calls.map((c) => c.command)).toEqual(["register", "one-job"]);
    const [reg, job] = calls as [(typeof calls)[number], (typeof calls)[number]];
    const labels = [`lab$(touch ${marker}):host`, "back`touch " + marker + "`tick:host", `quote'n"d:host`, "macos-\u2028ls:host", "xcode:host"];
    expect(reg.problems).toEqual([]);
    expect(reg.argv).toEqual([
      "register",
      "--no-interactive",
      "--instance",
      `https://forgejo.example/$(touch ${marker})`,
      "--token",
      SECRET,
      "--name",
      hostile().runnerName,
      "--labels",
      labels.join(","),
      "--config",
      "runner.yaml",
    ]);
    expect(reg.cwd).toBe(workdir);
    expect(job.argv).toEqual(["one-job", "--config", "runner.yaml"]);
    expect(job.problems).toEqual([]);
    // The job never sees the registration token.
    expect(job.env.FORGEJO_RUNNER_TOKEN).toBeUndefined();
    const yaml = JSON.parse(job.config!.content!) as { runner: { labels: string[]; capacity: number }; cache: { enabled: boolean }; host: { workdir_parent: string } };
    expect(yaml.runner.labels).toEqual(labels);
    expect(yaml.runner.capacity).toBe(1);
    expect(yaml.cache.enabled).toBe(false);
    expect(yaml.host.workdir_parent).toBe(`${workdir}/work`);
    expect(job.config!.content).toContain("\\u2028");
    expect(job.config!.mode).toBe("600");
  });

  it("ephemeral mode: writes the runner token to a 0600 file and runs one-job pinned to the handle", async () => {
    const workdir = join(tmp.dir, "w#?x");
    const cachePath = join(tmp.dir, "cache");
    const script = buildBashBootstrap({
      ...base(workdir),
      cachePath,
      credentials: publicCredentials({ mode: "ephemeral", instanceUrl: "https://forgejo.example", uuid: "uuid-'1'", token: SECRET }),
    });
    expect(script).not.toContain(SECRET);
    const r = await run(script);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(marker)).toBe(false);
    const [job] = runner.calls();
    expect(job!.command).toBe("one-job");
    expect(job!.problems).toEqual([]);
    const tokenUrl = pathToFileURL(join(workdir, "runner-token")).href;
    expect(job!.argv).toEqual([
      "one-job",
      "--config",
      "runner.yaml",
      "--url",
      "https://forgejo.example",
      "--uuid",
      "uuid-'1'",
      "--token-url",
      tokenUrl,
      ...job!.labels.flatMap((l) => ["--label", l]),
      "--handle",
      hostile().jobHandle,
    ]);
    expect(job!.labels).toHaveLength(5);
    expect(job!.tokenFile).toMatchObject({ content: SECRET, mode: "600" });
    expect(job!.env.FORGEJO_RUNNER_TOKEN).toBeUndefined();
    const yaml = JSON.parse(job!.config!.content!) as { cache: { enabled: boolean; dir: string } };
    expect(yaml.cache).toEqual({ enabled: true, dir: `${cachePath}/actcache` });
    expect(existsSync(`${cachePath}/actcache`)).toBe(true);
  });

  it("daemon mode has no --handle; a failing runner's status is the script's status", async () => {
    const script = buildBashBootstrap({
      ...base(join(tmp.dir, "w")),
      mode: "daemon",
      credentials: publicCredentials({ mode: "ephemeral", instanceUrl: "https://f", uuid: "u", token: SECRET }),
    });
    const r = await run(script, { FORGEJO_RUNNER_TOKEN: SECRET, FAKE_RUNNER_EXIT_CODE: "5" });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toContain("forgejo-runner exited with status 5");
    const [job] = runner.calls();
    expect(job!.command).toBe("daemon");
    expect(job!.argv).not.toContain("--handle");
  });

  it("refuses to start without the secret in the environment", async () => {
    const script = buildBashBootstrap({ ...base(join(tmp.dir, "w")), credentials: { mode: "token", instanceUrl: "https://f" } });
    const r = await run(script, {});
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("FORGEJO_RUNNER_TOKEN is not set");
    expect(runner.calls()).toEqual([]);
  });

  it("downloads forgejo-runner when it is not on PATH, and says what to do when that fails", async () => {
    const binary = readFileSync(join(FAKE_RUNNER_DIR, "forgejo-runner"));
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url ?? "");
      if (req.url === "/ok/forgejo-runner") res.writeHead(200).end(binary);
      else res.writeHead(404).end("not found");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const pathWithoutRunner = (process.env.PATH ?? "/usr/bin:/bin").split(":").filter((d) => d !== FAKE_RUNNER_DIR).join(":");
    try {
      const workdir = join(tmp.dir, "dl");
      const ok = buildBashBootstrap({
        ...base(workdir),
        downloadUrl: `${origin}/ok/forgejo-runner`,
        credentials: { mode: "token", instanceUrl: "https://f" },
      });
      const r = await run(ok, { FORGEJO_RUNNER_TOKEN: SECRET }, pathWithoutRunner);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain(`downloading ${origin}/ok/forgejo-runner`);
      expect(runner.calls().map((c) => c.command)).toEqual(["register", "one-job"]);
      expect(readdirSync(join(workdir, "bin"))).toEqual(["forgejo-runner"]);

      const bad = buildBashBootstrap({
        ...base(join(tmp.dir, "dl2")),
        downloadUrl: `${origin}/missing`,
        credentials: { mode: "token", instanceUrl: "https://f" },
      });
      const r2 = await run(bad, { FORGEJO_RUNNER_TOKEN: SECRET }, pathWithoutRunner);
      expect(r2.exitCode).toBe(3);
      expect(r2.stderr).toContain("install forgejo-runner in the base image or check runner.version (12.6.4)");
      expect(hits).toEqual(["/ok/forgejo-runner", "/missing"]);
    } finally {
      server.close();
    }
  });

  it("points at the darwin-arm64 release of runner.version by default", () => {
    const script = buildBashBootstrap({ ...base("/tmp/w"), downloadUrl: undefined, runnerVersion: "v12.6.4", credentials: { mode: "token", instanceUrl: "https://f" } });
    expect(script).toContain("https://code.forgejo.org/forgejo/runner/releases/download/v12.6.4/forgejo-runner-12.6.4-darwin-arm64");
  });

  it("refuses relative paths and comma labels", () => {
    expect(() => buildBashBootstrap({ ...base("rel"), credentials: { mode: "token", instanceUrl: "x" } })).toThrow(/absolute/);
    expect(() => buildBashBootstrap({ ...base("/w"), labels: ["a,b"], credentials: { mode: "token", instanceUrl: "x" } })).toThrow(/comma/);
    expect(runnerYaml({ labels: ["a"], workdir: "/w/" })).toContain('"workdir_parent": "/w/work"');
  });
});

describe("buildDetachedBashLauncher (the nsc ssh fallback)", () => {
  it("exports the env, starts the bootstrap in the background and returns at once", async () => {
    const workdir = join(tmp.dir, "bg");
    const script = buildBashBootstrap({ ...base(workdir), credentials: { mode: "ephemeral", instanceUrl: "https://f", uuid: "u" } });
    // A value that contains a would-be heredoc terminator on its own line.
    const sneaky = `x\nFNSC_EOF_0000\ntouch ${marker}\n'$(touch ${marker})'`;
    const payload = buildDetachedBashLauncher({ script, env: { FORGEJO_RUNNER_TOKEN: SECRET, FORGEJO_SNEAKY: sneaky, PATH: runner.env.PATH! } });
    const started = Date.now();
    const r = await execa("/bin/bash", [], { input: payload, env: { TMPDIR: tmp.dir, HOME: tmp.dir, FAKE_RUNNER_LOG: runner.logPath, PATH: "/usr/bin:/bin" }, extendEnv: false, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/runner started in the background \(pid \d+, log .*forgejo-nsc\.\w+\/log\)/);
    expect(Date.now() - started).toBeLessThan(10_000);

    const dir = readdirSync(tmp.dir).find((d) => d.startsWith("forgejo-nsc."))!;
    const status = await waitFor(() => (existsSync(join(tmp.dir, dir, "exit-status")) ? readFileSync(join(tmp.dir, dir, "exit-status"), "utf8") : undefined), {
      what: "the background bootstrap to finish",
    });
    expect(status.trim()).toBe("0");
    expect(existsSync(marker)).toBe(false);
    const [job] = runner.calls();
    expect(job!.command).toBe("one-job");
    expect(job!.tokenFile?.content).toBe(SECRET);
    expect(job!.env.FORGEJO_SNEAKY).toBe(sneaky);
    expect(job!.env.FORGEJO_RUNNER_TOKEN).toBeUndefined();
    // The bootstrap stored on disk holds no secret.
    expect(readFileSync(join(tmp.dir, dir, "bootstrap.sh"), "utf8")).not.toContain(SECRET);
  });

  it("on a Mac, destroys its own instance with the image's nsc and asks to shut down once the job is done", async () => {
    const nsc = createFakeNsc(join(tmp.dir, "nsc"));
    const created = await execa(nsc.bin, ["--region", "ord4", "create", "-o", "json", "--machine_type", "macos/arm64:6x14", "--bare"], { env: nsc.env });
    const instanceId = (JSON.parse(created.stdout) as { cluster_id: string }).cluster_id;
    // Stand-ins for macOS: uname says Darwin, sudo records what it was asked, nsc is the fake.
    const bin = join(tmp.dir, "mac-bin");
    const sudoLog = join(tmp.dir, "sudo.log");
    mkdirSync(bin);
    writeFileSync(join(bin, "uname"), "#!/bin/sh\necho Darwin\n", { mode: 0o755 });
    writeFileSync(join(bin, "sudo"), `#!/bin/sh\necho "$*" >> ${JSON.stringify(sudoLog)}\n`, { mode: 0o755 });
    symlinkSync(nsc.bin, join(bin, "nsc"));

    const script = buildBashBootstrap({ ...base(join(tmp.dir, "mac")), credentials: { mode: "ephemeral", instanceUrl: "https://f", uuid: "u" } });
    const payload = buildDetachedBashLauncher({ script, env: { FORGEJO_RUNNER_TOKEN: SECRET, ...nsc.env }, selfDestroy: { instanceId, region: "ord4" } });
    const r = await execa("/bin/bash", [], { input: payload, env: { TMPDIR: tmp.dir, HOME: tmp.dir, FAKE_RUNNER_LOG: runner.logPath, PATH: `${bin}:${runner.env.PATH!}` }, extendEnv: false, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    await waitFor(() => existsSync(sudoLog), { what: "the shutdown request" });
    expect(readFileSync(sudoLog, "utf8")).toBe("-n /sbin/shutdown -h now\n");
    expect(nsc.instances().map((i) => i.id)).not.toContain(instanceId);
    const [destroy] = nsc.calls("destroy");
    expect(destroy!.argv).toEqual(["--region", "ord4", "destroy", "--force", instanceId]);
    expect(runner.calls().map((c) => c.command)).toEqual(["one-job"]);
  });

  it("never lets content end its here-document early", () => {
    const content = "a\nFNSC_EOF_x\nb";
    const doc = heredocToFile("/f", content);
    const delim = /<<'([^']+)'/.exec(doc)![1]!;
    expect(content.split("\n")).not.toContain(delim);
    expect(doc.endsWith(`\n${delim}`)).toBe(true);
  });
});
