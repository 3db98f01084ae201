import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeEach, describe, expect, it } from "vitest";
import { buildShBootstrap } from "../../src/runner/bootstrap-sh.js";
import type { ShBootstrapOptions } from "../../src/runner/bootstrap-sh.js";
import { FAKE_RUNNER_DIR } from "../fakes/forgejo-runner/index.js";
import { runnerSandbox } from "../helpers/runner-sandbox.js";

/**
 * The upstream runner image is Alpine with git and bash only (runner Dockerfile: `apk add git bash`),
 * so JavaScript actions on the host executor need node installed by the bootstrap. These tests run
 * the script with a PATH that holds only the tools it uses, a fake `apk`, and optionally `node`.
 */
const sandbox = runnerSandbox("fnsc-node-");
let bin: string;
let apkLog: string;

beforeEach(() => {
  bin = join(sandbox.dir, "bin");
  mkdirSync(bin);
  for (const tool of ["mkdir", "rm", "mkfifo", "chmod"]) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  // The fake runner is a node script: call node by its absolute path so `command -v node` stays false.
  writeFileSync(join(bin, "forgejo-runner"), `#!/bin/sh\nexec ${process.execPath} ${join(FAKE_RUNNER_DIR, "forgejo-runner")} "$@"\n`);
  chmodSync(join(bin, "forgejo-runner"), 0o755);
  apkLog = join(sandbox.dir, "apk.log");
  writeFileSync(join(bin, "apk"), `#!/bin/sh\necho "$*" >> ${apkLog}\n`);
  chmodSync(join(bin, "apk"), 0o755);
});

const base: ShBootstrapOptions = {
  runnerName: "r",
  labels: ["linux"],
  executor: "host",
  mode: "one-job",
  workdir: "/",
  credentials: { mode: "token", instanceUrl: "https://f" },
  scriptEnv: {},
};

async function run(o: Partial<ShBootstrapOptions>, withNode = false) {
  if (withNode) symlinkSync(process.execPath, join(bin, "node"));
  const script = buildShBootstrap({ ...base, workdir: join(sandbox.dir, "w"), ...o });
  const r = await execa("/bin/sh", ["-c", script], {
    env: { ...sandbox.runner.env, PATH: bin, FORGEJO_RUNNER_TOKEN: "tok" },
    extendEnv: false,
    reject: false,
    cwd: sandbox.dir,
  });
  expect(r.exitCode, r.stderr).toBe(0);
  return { apk: existsSync(apkLog) ? readFileSync(apkLog, "utf8").trim().split("\n") : [], stderr: r.stderr };
}

describe("installing node for JavaScript actions", () => {
  it("installs nodejs with apk when the image has no node", async () => {
    const r = await run({});
    expect(r.apk).toEqual(["add --no-cache nodejs npm"]);
    expect(r.stderr).toContain("installing nodejs for JavaScript actions");
    expect(sandbox.runner.calls().map((c) => c.command)).toEqual(["register", "one-job"]);
  });

  it("keeps apk's downloads on the cache volume when there is one", async () => {
    const cache = join(sandbox.dir, "cache");
    const r = await run({ cachePath: cache });
    expect(r.apk).toEqual([`add --cache-dir ${cache}/apk nodejs npm`]);
    expect(existsSync(join(cache, "apk"))).toBe(true);
  });

  it("leaves an image that has node alone", async () => {
    expect((await run({}, true)).apk).toEqual([]);
  });

  it("does nothing for labels that run in containers, or when runner.install_node is off", async () => {
    expect((await run({ executor: "docker://node:22" })).apk).toEqual([]);
    expect((await run({ installNode: false })).apk).toEqual([]);
  });
});
