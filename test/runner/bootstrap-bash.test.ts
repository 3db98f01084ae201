import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { buildBashBootstrap, buildDetachedBashLauncher, publicCredentials, runnerYaml } from "../../src/runner/bootstrap-bash.js";
import type { BashBootstrapOptions } from "../../src/runner/bootstrap-bash.js";
import { heredocToFile } from "../../src/runner/quote-bash.js";
import { FAKE_RUNNER_DIR } from "../fakes/forgejo-runner/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import { runnerSandbox } from "../helpers/runner-sandbox.js";
import { waitFor } from "../helpers/wait.js";

const SECRET = "macOS-s3cr3t-T0ken-77aa";

/** PATH without the fake forgejo-runner, so the bootstrap has to fetch one. */
const pathWithoutRunner = () =>
  (process.env.PATH ?? "/usr/bin:/bin")
    .split(":")
    .filter((d) => d !== FAKE_RUNNER_DIR)
    .join(":");

const sandbox = runnerSandbox("fnsc-bash-");

/** As the Compute API application runs it: /bin/bash -c <script> with the env (login shell skipped). */
function run(script: string, env: Record<string, string> = { FORGEJO_RUNNER_TOKEN: SECRET }, path = sandbox.runner.env.PATH!) {
  return execa("/bin/bash", ["-c", script], {
    env: { ...sandbox.runner.env, PATH: path, HOME: sandbox.dir, ...env },
    extendEnv: false,
    reject: false,
    cwd: sandbox.dir,
  });
}

function hostile(): Pick<BashBootstrapOptions, "runnerName" | "labels" | "jobHandle"> {
  return {
    runnerName: `evil'; touch ${sandbox.marker}; echo '`,
    labels: [`lab$(touch ${sandbox.marker})`, "back`touch " + sandbox.marker + "`tick", `quote'n"d:host`, "macos-\u2028ls", "xcode:host"],
    jobHandle: `h'; touch ${sandbox.marker}; '`,
  };
}

function base(workdir: string): Omit<BashBootstrapOptions, "credentials"> {
  // Never the real release URL: a test must not reach out of this machine.
  return {
    ...hostile(),
    executor: "host",
    mode: "one-job",
    workdir,
    source: { kind: "download", url: "http://127.0.0.1:9/no-download-in-tests", sha256: "0".repeat(64) },
  };
}

describe("buildBashBootstrap", () => {
  it("token mode: registers with the token from the environment, unsets it, runs one job; hostile values stay inert", async () => {
    const workdir = join(sandbox.dir, "work dir $HOME");
    const script = buildBashBootstrap({
      ...base(workdir),
      credentials: publicCredentials({
        mode: "token",
        instanceUrl: `https://forgejo.example/$(touch ${sandbox.marker})`,
        registrationToken: SECRET,
      }),
    });
    expect(script).not.toContain(SECRET);
    const r = await run(script);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(sandbox.marker)).toBe(false);
    expect(r.stderr + r.stdout).not.toContain(SECRET);
    expect(r.stderr).toContain("forgejo-runner exited with status 0");

    const calls = sandbox.runner.calls();
    expect(calls.map((c) => c.command)).toEqual(["register", "one-job"]);
    const [reg, job] = calls as [(typeof calls)[number], (typeof calls)[number]];
    const labels = [
      `lab$(touch ${sandbox.marker}):host`,
      "back`touch " + sandbox.marker + "`tick:host",
      `quote'n"d:host`,
      "macos-\u2028ls:host",
      "xcode:host",
    ];
    expect(reg.problems).toEqual([]);
    expect(reg.argv).toEqual([
      "register",
      "--no-interactive",
      "--instance",
      `https://forgejo.example/$(touch ${sandbox.marker})`,
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
    const yaml = JSON.parse(job.config!.content!) as {
      runner: { labels: string[]; capacity: number };
      cache: { enabled: boolean };
      host: { workdir_parent: string };
    };
    expect(yaml.runner.labels).toEqual(labels);
    expect(yaml.runner.capacity).toBe(1);
    expect(yaml.cache.enabled).toBe(false);
    expect(yaml.host.workdir_parent).toBe(`${workdir}/work`);
    expect(job.config!.content).toContain("\\u2028");
    expect(job.config!.mode).toBe("600");
  });

  it("ephemeral mode: writes the runner token to a 0600 file and runs one-job pinned to the handle", async () => {
    const workdir = join(sandbox.dir, "w#?x");
    const cachePath = join(sandbox.dir, "cache");
    const script = buildBashBootstrap({
      ...base(workdir),
      cachePath,
      credentials: publicCredentials({ mode: "ephemeral", instanceUrl: "https://forgejo.example", uuid: "uuid-'1'", token: SECRET }),
    });
    expect(script).not.toContain(SECRET);
    const r = await run(script);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(existsSync(sandbox.marker)).toBe(false);
    const [job] = sandbox.runner.calls();
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
      // Without --wait a fetch that brings no task ends one-job with exit 2 (runner poll/single.go).
      "--wait",
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
      ...base(join(sandbox.dir, "w")),
      mode: "daemon",
      credentials: publicCredentials({ mode: "ephemeral", instanceUrl: "https://f", uuid: "u", token: SECRET }),
    });
    const r = await run(script, { FORGEJO_RUNNER_TOKEN: SECRET, FAKE_RUNNER_EXIT_CODE: "5" });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toContain("forgejo-runner exited with status 5");
    const [job] = sandbox.runner.calls();
    expect(job!.command).toBe("daemon");
    expect(job!.argv).not.toContain("--handle");
    expect(job!.argv).not.toContain("--wait");
  });

  it("refuses to start without the secret in the environment", async () => {
    const script = buildBashBootstrap({ ...base(join(sandbox.dir, "w")), credentials: { mode: "token", instanceUrl: "https://f" } });
    const r = await run(script, {});
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("FORGEJO_RUNNER_TOKEN is not set");
    expect(sandbox.runner.calls()).toEqual([]);
  });

  it("downloads the configured binary when it is not on PATH, checks its SHA-256, and says what to do when either fails", async () => {
    const binary = readFileSync(join(FAKE_RUNNER_DIR, "forgejo-runner"));
    const sha256 = createHash("sha256").update(binary).digest("hex");
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url ?? "");
      if (req.url === "/ok/forgejo-runner") res.writeHead(200).end(binary);
      else res.writeHead(404).end("not found");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const workdir = join(sandbox.dir, "dl");
      const ok = buildBashBootstrap({
        ...base(workdir),
        source: { kind: "download", url: `${origin}/ok/forgejo-runner`, sha256 },
        credentials: { mode: "token", instanceUrl: "https://f" },
      });
      const r = await run(ok, { FORGEJO_RUNNER_TOKEN: SECRET }, pathWithoutRunner());
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain(`downloading ${origin}/ok/forgejo-runner`);
      expect(sandbox.runner.calls().map((c) => c.command)).toEqual(["register", "one-job"]);
      expect(readdirSync(join(workdir, "bin"))).toEqual(["forgejo-runner"]);

      const tampered = buildBashBootstrap({
        ...base(join(sandbox.dir, "dl3")),
        source: { kind: "download", url: `${origin}/ok/forgejo-runner`, sha256: "f".repeat(64) },
        credentials: { mode: "token", instanceUrl: "https://f" },
      });
      const r3 = await run(tampered, { FORGEJO_RUNNER_TOKEN: SECRET }, pathWithoutRunner());
      expect(r3.exitCode).toBe(3);
      expect(r3.stderr).toContain(
        `checksum mismatch for ${origin}/ok/forgejo-runner: the file has SHA-256 ${sha256}, runner.binaries.macos_arm64.sha256 says ${"f".repeat(64)}`,
      );
      expect(existsSync(join(sandbox.dir, "dl3", "bin", "forgejo-runner"))).toBe(false);

      const bad = buildBashBootstrap({
        ...base(join(sandbox.dir, "dl2")),
        source: { kind: "download", url: `${origin}/missing`, sha256 },
        credentials: { mode: "token", instanceUrl: "https://f" },
      });
      const r2 = await run(bad, { FORGEJO_RUNNER_TOKEN: SECRET }, pathWithoutRunner());
      expect(r2.exitCode).toBe(3);
      expect(r2.stderr).toContain(`download of ${origin}/missing failed: check runner.binaries.macos_arm64.url`);
      expect(hits).toEqual(["/ok/forgejo-runner", "/ok/forgejo-runner", "/missing"]);
      expect(sandbox.runner.calls()).toHaveLength(2);
    } finally {
      server.close();
    }
  });

  it("builds runner.version from its source archive with Go when nothing is configured, and keeps it on the cache volume", async () => {
    // The source archive as Forgejo serves it: one top-level directory.
    const tree = join(sandbox.dir, "archive", "runner");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "main.go"), "package main\n");
    const tarball = join(sandbox.dir, "runner.tar.gz");
    await execa("tar", ["-czf", tarball, "-C", join(sandbox.dir, "archive"), "runner"]);
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url ?? "");
      res.writeHead(200).end(readFileSync(tarball));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    // A stand-in `go`: records how it was called and "builds" the fake runner.
    const goDir = join(sandbox.dir, "go-bin");
    mkdirSync(goDir);
    const goLog = join(sandbox.dir, "go.log");
    writeFileSync(
      join(goDir, "go"),
      `#!/bin/bash\necho "$PWD|$GOPATH|$CGO_ENABLED|$*" >> ${goLog}\n[ -f main.go ] || exit 9\nout=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done\ncp ${join(FAKE_RUNNER_DIR, "forgejo-runner")} "$out"\n`,
      { mode: 0o755 },
    );
    const archiveUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/forgejo/runner/archive/v12.13.2.tar.gz`;
    const cache = join(sandbox.dir, "cache");
    try {
      const script = (workdir: string) =>
        buildBashBootstrap({
          ...base(workdir),
          source: { kind: "source", version: "12.13.2", archiveUrl, module: "code.forgejo.org/forgejo/runner/v12" },
          cachePath: cache,
          credentials: { mode: "token", instanceUrl: "https://f" },
        });
      const r = await run(script(join(sandbox.dir, "b1")), { FORGEJO_RUNNER_TOKEN: SECRET }, `${goDir}:${pathWithoutRunner()}`);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain("upstream publishes no macOS build: building 12.13.2 from its source archive");
      const [call] = readFileSync(goLog, "utf8").trim().split("\n");
      const [cwd, gopath, cgo, args] = call!.split("|");
      expect(cwd).toBe(join(sandbox.dir, "b1", "runner-src"));
      expect(gopath).toBe(join(cache, "go"));
      expect(cgo).toBe("0");
      expect(args).toBe(
        `build -trimpath -ldflags -s -w -X code.forgejo.org/forgejo/runner/v12/internal/pkg/ver.version=v12.13.2 -o ${join(sandbox.dir, "b1", "bin", "forgejo-runner")} .`,
      );
      expect(existsSync(join(cache, "forgejo-runner", "v12.13.2", "forgejo-runner"))).toBe(true);
      expect(sandbox.runner.calls().map((c) => c.command)).toEqual(["register", "one-job"]);

      // The next instance with the same cache volume neither downloads nor builds.
      const r2 = await run(script(join(sandbox.dir, "b2")), { FORGEJO_RUNNER_TOKEN: SECRET }, `${goDir}:${pathWithoutRunner()}`);
      expect(r2.exitCode, r2.stderr).toBe(0);
      expect(r2.stderr).toContain("using forgejo-runner from the cache volume");
      expect(hits).toHaveLength(1);
      expect(readFileSync(goLog, "utf8").trim().split("\n")).toHaveLength(1);
    } finally {
      server.close();
    }
  });

  it("without Go or a configured binary, stops and says what to set", async () => {
    const noGo = buildBashBootstrap({
      ...base(join(sandbox.dir, "n1")),
      source: {
        kind: "source",
        version: "12.13.2",
        archiveUrl: "http://127.0.0.1:9/x.tar.gz",
        module: "code.forgejo.org/forgejo/runner/v12",
      },
      credentials: { mode: "token", instanceUrl: "https://f" },
    });
    // No go, no brew, no forgejo-runner on PATH.
    const withoutGo = pathWithoutRunner()
      .split(":")
      .filter((d) => !existsSync(join(d, "go")) && !existsSync(join(d, "brew")))
      .join(":");
    const r = await run(noGo, { FORGEJO_RUNNER_TOKEN: SECRET }, withoutGo);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain(
      "cannot build forgejo-runner: no go on this image; install Go in the image, or set runner.binaries.macos_arm64",
    );
    const none = buildBashBootstrap({
      ...base(join(sandbox.dir, "n2")),
      source: { kind: "none", problem: "no forgejo-runner for macOS: set runner.binaries.macos_arm64" },
      credentials: { mode: "token", instanceUrl: "https://f" },
    });
    const r2 = await run(none, { FORGEJO_RUNNER_TOKEN: SECRET }, pathWithoutRunner());
    expect(r2.exitCode).toBe(3);
    expect(r2.stderr).toContain("no forgejo-runner for macOS: set runner.binaries.macos_arm64");
    expect(sandbox.runner.calls()).toEqual([]);
  });

  it("refuses relative paths and comma labels", () => {
    expect(() => buildBashBootstrap({ ...base("rel"), credentials: { mode: "token", instanceUrl: "x" } })).toThrow(/absolute/);
    expect(() => buildBashBootstrap({ ...base("/w"), labels: ["a,b"], credentials: { mode: "token", instanceUrl: "x" } })).toThrow(/comma/);
    expect(runnerYaml({ labels: ["a"], workdir: "/w/" })).toContain('"workdir_parent": "/w/work"');
  });
});

describe("buildDetachedBashLauncher (the nsc ssh fallback)", () => {
  it("exports the env, starts the bootstrap in the background and returns at once", async () => {
    const workdir = join(sandbox.dir, "bg");
    const script = buildBashBootstrap({ ...base(workdir), credentials: { mode: "ephemeral", instanceUrl: "https://f", uuid: "u" } });
    // A value that contains a would-be heredoc terminator on its own line.
    const sneaky = `x\nFNSC_EOF_0000\ntouch ${sandbox.marker}\n'$(touch ${sandbox.marker})'`;
    const payload = buildDetachedBashLauncher({
      script,
      env: { FORGEJO_RUNNER_TOKEN: SECRET, FORGEJO_SNEAKY: sneaky, PATH: sandbox.runner.env.PATH! },
    });
    const started = Date.now();
    const r = await execa("/bin/bash", [], {
      input: payload,
      env: { TMPDIR: sandbox.dir, HOME: sandbox.dir, FAKE_RUNNER_LOG: sandbox.runner.logPath, PATH: "/usr/bin:/bin" },
      extendEnv: false,
      reject: false,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/runner started in the background \(pid \d+, log .*forgejo-nsc\.\w+\/log\)/);
    expect(Date.now() - started).toBeLessThan(10_000);

    const dir = readdirSync(sandbox.dir).find((d) => d.startsWith("forgejo-nsc."))!;
    const status = await waitFor(
      () => (existsSync(join(sandbox.dir, dir, "exit-status")) ? readFileSync(join(sandbox.dir, dir, "exit-status"), "utf8") : undefined),
      {
        what: "the background bootstrap to finish",
      },
    );
    expect(status.trim()).toBe("0");
    expect(existsSync(sandbox.marker)).toBe(false);
    const [job] = sandbox.runner.calls();
    expect(job!.command).toBe("one-job");
    expect(job!.tokenFile?.content).toBe(SECRET);
    expect(job!.env.FORGEJO_SNEAKY).toBe(sneaky);
    expect(job!.env.FORGEJO_RUNNER_TOKEN).toBeUndefined();
    // The bootstrap stored on disk holds no secret.
    expect(readFileSync(join(sandbox.dir, dir, "bootstrap.sh"), "utf8")).not.toContain(SECRET);
  });

  it("on a Mac, destroys its own instance with the image's nsc and asks to shut down once the job is done", async () => {
    const nsc = createFakeNsc(join(sandbox.dir, "nsc"));
    const created = await execa(nsc.bin, ["--region", "ord4", "create", "-o", "json", "--machine_type", "macos/arm64:6x14", "--bare"], {
      env: nsc.env,
    });
    const instanceId = (JSON.parse(created.stdout) as { cluster_id: string }).cluster_id;
    // Stand-ins for macOS: uname says Darwin, sudo records what it was asked, nsc is the fake.
    const bin = join(sandbox.dir, "mac-bin");
    const sudoLog = join(sandbox.dir, "sudo.log");
    mkdirSync(bin);
    writeFileSync(join(bin, "uname"), "#!/bin/sh\necho Darwin\n", { mode: 0o755 });
    writeFileSync(join(bin, "sudo"), `#!/bin/sh\necho "$*" >> ${JSON.stringify(sudoLog)}\n`, { mode: 0o755 });
    symlinkSync(nsc.bin, join(bin, "nsc"));

    const script = buildBashBootstrap({
      ...base(join(sandbox.dir, "mac")),
      credentials: { mode: "ephemeral", instanceUrl: "https://f", uuid: "u" },
    });
    const payload = buildDetachedBashLauncher({
      script,
      env: { FORGEJO_RUNNER_TOKEN: SECRET, ...nsc.env },
      selfDestroy: { instanceId, region: "ord4" },
    });
    const r = await execa("/bin/bash", [], {
      input: payload,
      env: { TMPDIR: sandbox.dir, HOME: sandbox.dir, FAKE_RUNNER_LOG: sandbox.runner.logPath, PATH: `${bin}:${sandbox.runner.env.PATH!}` },
      extendEnv: false,
      reject: false,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    await waitFor(() => existsSync(sudoLog), { what: "the shutdown request" });
    expect(readFileSync(sudoLog, "utf8")).toBe("-n /sbin/shutdown -h now\n");
    expect(nsc.instances().map((i) => i.id)).not.toContain(instanceId);
    const [destroy] = nsc.calls("destroy");
    expect(destroy!.argv).toEqual(["--region", "ord4", "destroy", "--force", instanceId]);
    expect(sandbox.runner.calls().map((c) => c.command)).toEqual(["one-job"]);
  });

  it("never lets content end its here-document early", () => {
    const content = "a\nFNSC_EOF_x\nb";
    const doc = heredocToFile("/f", content);
    const delim = /<<'([^']+)'/.exec(doc)![1]!;
    expect(content.split("\n")).not.toContain(delim);
    expect(doc.endsWith(`\n${delim}`)).toBe(true);
  });
});
