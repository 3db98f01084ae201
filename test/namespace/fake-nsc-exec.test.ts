import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { liveProcessesInGroup } from "../helpers/process-group.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The executing stand-in (knob `execute`): the real-upstream suites rely on `nsc run … -- CMD`
 * running CMD for real, on list showing it until it exits, and on destroy ending every process.
 */
let tmp: { dir: string; cleanup: () => void };
let fake: FakeNsc;
let bin: string;

beforeEach(() => {
  tmp = tempDir("fnsc-exec-");
  bin = join(tmp.dir, "bin");
  mkdirSync(bin);
  // A program found only through execute.pathPrefix, as the real forgejo-runner is in the suites.
  writeFileSync(join(bin, "only-in-prefix"), '#!/bin/sh\necho "prefix tool ran with $*"\n');
  chmodSync(join(bin, "only-in-prefix"), 0o755);
  fake = createFakeNsc(join(tmp.dir, "nsc"), { execute: { pathPrefix: bin } });
});
afterEach(() => {
  fake.destroyAll();
  tmp.cleanup();
});

async function run(script: string, env: Record<string, string> = {}): Promise<string> {
  const flags = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
  const r = await execa(fake.bin, ["run", "-o", "json", "--image", "img", "--label", "t=1", ...flags, "--", "/bin/sh", "-c", script], {
    env: fake.env,
    reject: false,
  });
  expect(r.exitCode, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { instance_id: string }).instance_id;
}

async function listed(): Promise<string[]> {
  const r = await execa(fake.bin, ["list", "--all", "-o", "json", "--label", "t=1"], { env: fake.env });
  return ((JSON.parse(r.stdout) as { cluster_id: string }[] | null) ?? []).map((i) => i.cluster_id);
}

const groupAlive = (pgid: number) => liveProcessesInGroup(pgid).length > 0;

describe("fake nsc executing stand-in", () => {
  it("runs the command with the -e environment and the prefix on PATH; the instance ends with the process", async () => {
    const id = await run('echo "$GREETING" > greeting; only-in-prefix a b > tool; mkfifo go; read x < go', { GREETING: "hello world" });
    expect(await listed()).toEqual([id]);
    const inst = fake.instances().find((i) => i.id === id)!;
    const dir = inst.container!.dir!;
    await waitFor(() => existsSync(join(dir, "go")), { what: "the command to run" });
    expect(readFileSync(join(dir, "greeting"), "utf8")).toBe("hello world\n");
    expect(readFileSync(join(dir, "tool"), "utf8")).toBe("prefix tool ran with a b\n");
    // Let the process end by itself: the instance is gone at the next look, with the exit code.
    await execa("/bin/sh", ["-c", `echo go > "${dir}/go"`]);
    await waitFor(async () => (await listed()).length === 0, { what: "the instance to end with its process" });
    const ended = fake.instances({ includeDestroyed: true }).find((i) => i.id === id)!;
    expect(ended.container!.exit_code).toBe(0);
    expect(groupAlive(inst.container!.pid!)).toBe(false);
  });

  it("destroy ends every process of the instance, background children too", async () => {
    const id = await run("sleep 300 & echo $! > child; sleep 300");
    const inst = fake.instances().find((i) => i.id === id)!;
    await waitFor(() => existsSync(join(inst.container!.dir!, "child")), { what: "the background child" });
    expect(groupAlive(inst.container!.pid!)).toBe(true);
    const r = await execa(fake.bin, ["destroy", "--force", id], { env: fake.env, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    await waitFor(() => !groupAlive(inst.container!.pid!), { what: "the process group to end" });
    expect(await listed()).toEqual([]);
  });

  it("the instance deadline ends the processes too", async () => {
    const r = await execa(fake.bin, ["run", "-o", "json", "--image", "img", "--duration", "10m", "--", "/bin/sh", "-c", "sleep 300"], {
      env: fake.env,
    });
    const id = (JSON.parse(r.stdout) as { instance_id: string }).instance_id;
    const pid = fake.instances().find((i) => i.id === id)!.container!.pid!;
    fake.advanceTime(11 * 60_000);
    await execa(fake.bin, ["list", "--all", "-o", "json"], { env: fake.env });
    await waitFor(() => !groupAlive(pid), { what: "the deadline to end the process group" });
  });
});
