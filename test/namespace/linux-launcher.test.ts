import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { Metrics } from "../../src/http/metrics.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER, LaunchError } from "../../src/namespace/launcher.js";
import type { LaunchSpec, RunnerCredentials } from "../../src/namespace/launcher.js";
import { LinuxLauncher } from "../../src/namespace/linux-launcher.js";
import { cacheTag } from "../../src/runner/labels.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import { labelSlug } from "../../src/runner/labels.js";
import { createFakeRunner } from "../fakes/forgejo-runner/index.js";
import type { FakeRunner } from "../fakes/forgejo-runner/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc, FakeNscInstance } from "../fakes/nsc/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

const REG_TOKEN = "RegToken-0123456789abcdefABCDEF0123456789";
const RUNNER_TOKEN = "ephemeral-runner-token-fedcba9876543210";

let tmp: { dir: string; cleanup: () => void };
let fake: FakeNsc;
let runner: FakeRunner;
let logs: ReturnType<typeof captureLogger>;
let tokenFile: string;

beforeEach(() => {
  tmp = tempDir("fnsc-linux-");
  fake = createFakeNsc(join(tmp.dir, "nsc"));
  runner = createFakeRunner(join(tmp.dir, "runner"));
  logs = captureLogger("debug");
  tokenFile = join(tmp.dir, "nsc-token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: "nsrt_test" }));
});
afterEach(() => tmp.cleanup());

function launcher(namespace: Record<string, unknown> = {}, runnerCfg: Record<string, unknown> = {}) {
  const config = dispatcherConfigSchema.parse({
    forgejo: { base_url: "https://forgejo.example", token: "pat" },
    namespace: {
      nsc_binary: fake.bin,
      region: "ord4",
      token_file: tokenFile,
      workdir: join(tmp.dir, "container", "work"),
      environment: { FROM_CONFIG: "cfg", SHARED: "config-value" },
      ...namespace,
    },
    runner: runnerCfg,
  });
  const nsc = new NscCli({
    binary: config.namespace.nsc_binary,
    region: config.namespace.region,
    tokenFile: config.namespace.token_file,
    logger: logs.logger,
    metrics: new Metrics({ defaultMetrics: false }),
    env: fake.env,
  });
  return { launcher: new LinuxLauncher({ config, nsc, logger: logs.logger }), config };
}

function spec(over: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    runnerName: "nscloud-3f2a",
    platform: "linux",
    labels: ["namespace-profile-linux-medium", "ubuntu:docker://node:20"],
    image: "code.forgejo.org/forgejo/runner:12",
    machineType: "4x8",
    ttlMs: 20 * 60_000,
    env: {},
    credentials: { mode: "token", instanceUrl: "https://forgejo.example", registrationToken: REG_TOKEN },
    instanceLabels: { [LABEL_OWNER]: "default", [LABEL_RUNNER]: "nscloud-3f2a", [LABEL_PLATFORM]: "linux", team: "ci" },
    ...over,
  };
}

/** Runs the instance's container command the way the container would, with its -e environment. */
async function runContainer(inst: FakeNscInstance, recordEnv: string[] = []) {
  const [sh, flag, script] = inst.args!;
  expect([sh, flag]).toEqual(["/bin/sh", "-c"]);
  return execa("/bin/sh", ["-c", script!], {
    env: { ...inst.env, ...runner.env, FAKE_RUNNER_RECORD_ENV: recordEnv.join(",") },
    extendEnv: false,
    reject: false,
  });
}

async function launchError(p: Promise<unknown>): Promise<LaunchError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LaunchError);
  return err as LaunchError;
}

function allText(err?: Error): string {
  return logs.text() + "\n" + (err?.message ?? "") + "\n" + JSON.stringify(err ?? {});
}

describe("LinuxLauncher.launch", () => {
  it("runs nsc with the documented flags, our labels on the instance and the bootstrap after --", async () => {
    const cachePath = join(tmp.dir, "container", "cache");
    const { launcher: l } = launcher({
      linux_cache_tag: "forgejo-{labels}",
      linux_cache_path: cachePath,
      linux_cache_size: "20gb",
      network: "host",
    });
    const { instanceId } = await l.launch(spec());
    const [call] = fake.calls("run");
    const argv = call!.argv;
    const dashdash = argv.indexOf("--");
    expect(argv.slice(dashdash)).toEqual(["--", "/bin/sh", "-c", expect.stringContaining("set -eu") as string]);
    expect(argv.slice(0, 2)).toEqual(["--region", "ord4"]);
    const flags = argv.slice(2, dashdash);
    const pairs = (name: string) => flags.flatMap((a, i) => (a === name ? [flags[i + 1]] : []));
    expect(flags.slice(0, 3)).toEqual(["run", "-o", "json"]);
    expect(pairs("--image")).toEqual(["code.forgejo.org/forgejo/runner:12"]);
    expect(pairs("--name")).toEqual(["nscloud-3f2a"]);
    expect(pairs("--machine_type")).toEqual(["4x8"]);
    expect(pairs("--duration")).toEqual(["1200s"]);
    expect(pairs("--wait_timeout")).toEqual(["300s"]);
    expect(pairs("--user")).toEqual(["root"]);
    expect(pairs("--network")).toEqual(["host"]);
    const slug = labelSlug(spec().labels);
    expect(pairs("--volume")).toEqual([`cache:forgejo-${slug}:${cachePath}:20gb`]);
    expect(pairs("--label").sort()).toEqual([
      "forgejo-nsc.owner=default",
      "forgejo-nsc.platform=linux",
      "forgejo-nsc.runner=nscloud-3f2a",
      "team=ci",
    ]);
    expect(pairs("-e").sort()).toEqual(
      [
        "FORGEJO_INSTANCE_URL=https://forgejo.example",
        "FORGEJO_RUNNER_LABELS=namespace-profile-linux-medium:host,ubuntu:docker://node:20",
        "FORGEJO_RUNNER_NAME=nscloud-3f2a",
        `FORGEJO_RUNNER_TOKEN=${REG_TOKEN}`,
        "FROM_CONFIG=cfg",
        `NSC_CACHE_PATH=${cachePath}`,
        "SHARED=config-value",
      ].sort(),
    );
    expect(call!.env).toMatchObject({ NS_DO_NOT_UPDATE: "1", NSC_TOKEN_FILE: tokenFile });
    // The secret travels as -e only, never in the script text.
    expect(argv[argv.length - 1]).not.toContain(REG_TOKEN);

    const [inst] = fake.instances();
    expect(inst!.id).toBe(instanceId);
    const r = await runContainer(inst!);
    expect(r.exitCode, r.stderr).toBe(0);
    const [reg, job] = runner.calls();
    expect(reg!.argv).toEqual(
      expect.arrayContaining([
        "register",
        "--token",
        REG_TOKEN,
        "--name",
        "nscloud-3f2a",
        "--labels",
        "namespace-profile-linux-medium:host,ubuntu:docker://node:20",
      ]),
    );
    expect(job!.argv).toEqual(["one-job", "--config", "runner.yaml"]);
    expect(job!.config!.content).toContain(`${cachePath}/actcache`);
    expect(existsSync(cachePath)).toBe(true);
    expect(allText()).not.toContain(REG_TOKEN);
  });

  it("gets env values with =, commas and quotes into the container intact, via the script", async () => {
    const { launcher: l } = launcher();
    const env = {
      QUERY: "https://h.example/?a=b,c=d",
      JSONISH: '{"k":"v=1"}',
      TRAILING_QUOTE: 'ends with"',
      MULTI: "x=1\ny=2",
      SAFE_URL: "https://h.example/?a=b",
      SHARED: "request-wins",
      FORGEJO_RUNNER_TOKEN: "request-cannot-override",
    };
    await l.launch(spec({ env }));
    const argv = fake.calls("run")[0]!.argv;
    const eFlags = argv.flatMap((a, i) => (a === "-e" ? [argv[i + 1]!] : []));
    expect(eFlags).toContain("SAFE_URL=https://h.example/?a=b");
    expect(eFlags).toContain("SHARED=request-wins");
    expect(eFlags).toContain(`FORGEJO_RUNNER_TOKEN=${REG_TOKEN}`);
    for (const k of ["QUERY", "JSONISH", "TRAILING_QUOTE", "MULTI"]) expect(eFlags.some((f) => f.startsWith(`${k}=`))).toBe(false);

    const inst = fake.instances()[0]!;
    const r = await runContainer(inst, Object.keys(env));
    expect(r.exitCode, r.stderr).toBe(0);
    const seen = runner.calls()[1]!.env;
    const { FORGEJO_RUNNER_TOKEN: _ignored, ...rest } = env;
    expect(seen).toMatchObject(rest);
    // The runner never sees the token in its environment: the script unsets it after registering.
    expect(seen.FORGEJO_RUNNER_TOKEN).toBeUndefined();
    expect(runner.calls()[0]!.argv).toContain(REG_TOKEN);
  });

  it("pins an ephemeral runner to its job with the runner token in a file", async () => {
    const { launcher: l } = launcher();
    const credentials: RunnerCredentials = {
      mode: "ephemeral",
      instanceUrl: "https://forgejo.example",
      uuid: "9f1c-uuid",
      token: RUNNER_TOKEN,
    };
    await l.launch(spec({ credentials, jobHandle: "9d52c7d8-handle" }));
    const inst = fake.instances()[0]!;
    expect(inst.env).toMatchObject({ FORGEJO_RUNNER_UUID: "9f1c-uuid", FORGEJO_RUNNER_TOKEN: RUNNER_TOKEN });
    const r = await runContainer(inst);
    expect(r.exitCode, r.stderr).toBe(0);
    const [job] = runner.calls();
    expect(job!.argv).toEqual(
      expect.arrayContaining(["one-job", "--url", "https://forgejo.example", "--uuid", "9f1c-uuid", "--handle", "9d52c7d8-handle"]),
    );
    expect(job!.tokenFile).toMatchObject({ content: RUNNER_TOKEN, mode: "600" });
    expect(allText()).not.toContain(RUNNER_TOKEN);
  });

  it("runs the daemon when runner.mode is daemon", async () => {
    const { launcher: l } = launcher({}, { mode: "daemon", executor: "docker://node:22" });
    await l.launch(spec({ labels: ["linux"] }));
    expect((await runContainer(fake.instances()[0]!)).exitCode).toBe(0);
    expect(runner.calls()[1]!.argv).toEqual(["daemon", "--config", "runner.yaml"]);
    expect(runner.calls()[0]!.argv).toEqual(expect.arrayContaining(["--labels", "linux:docker://node:22"]));
  });
});

describe("LinuxLauncher failures", () => {
  it("reports capacity without looking for leftovers (none can exist)", async () => {
    fake.setKnobs({ runCapacity: 1 });
    const { launcher: l } = launcher();
    const err = await launchError(l.launch(spec()));
    expect(err.kind).toBe("capacity");
    expect(err.message).toContain("nscloud-3f2a");
    expect(err.message).toContain("smaller machine_type");
    expect(fake.calls("list")).toEqual([]);
    expect(allText(err)).not.toContain(REG_TOKEN);
  });

  it("destroys the instance a wait timeout left behind", async () => {
    fake.setKnobs({ runNeverReady: 1, neverReadyDelayMs: 0 });
    const { launcher: l } = launcher();
    const err = await launchError(l.launch(spec()));
    const [left] = fake.instances({ includeDestroyed: true });
    expect(err.kind).toBe("transient");
    expect(err.instanceId).toBe(left!.id);
    expect(err.message).toContain(`destroyed instance ${left!.id} it left behind`);
    expect(err.message).toContain("namespace.wait_timeout");
    expect(fake.instances()).toEqual([]);
    expect(left!.destroy_reason).toBe("destroy");
    expect(allText(err)).not.toContain(REG_TOKEN);
  });

  it("finds a left-behind instance by its runner label when nsc did not name it", async () => {
    fake.setKnobs({ runNeverReady: 1, neverReadyDelayMs: 0, neverReadyWording: "deadline" });
    const { launcher: l } = launcher();
    const err = await launchError(l.launch(spec()));
    expect(fake.calls("run")[0]!.stderr).not.toContain("cluster id");
    expect(fake.calls("list")[0]!.argv).toEqual(
      expect.arrayContaining(["--all", "--label", "forgejo-nsc.runner=nscloud-3f2a", "--label", "forgejo-nsc.owner=default"]),
    );
    expect(fake.instances()).toEqual([]);
    expect(err.message).toContain("it left behind");
  });

  it("cleans up after an nsc run killed mid-creation", async () => {
    fake.setKnobs({ createDelayMs: 30_000 });
    const { launcher: l } = launcher();
    const ac = new AbortController();
    const p = l.launch(spec(), ac.signal);
    await waitFor(() => fake.instances().length === 1, { what: "instance recorded by the killed run" });
    ac.abort();
    const err = await launchError(p);
    expect(err.kind).toBe("transient");
    expect(fake.instances()).toEqual([]);
    expect(fake.instances({ includeDestroyed: true })[0]!.destroy_reason).toBe("destroy");
  });

  it("explains a container that exits before it is ready", async () => {
    fake.setKnobs({ runExitImmediately: 1 });
    const { launcher: l } = launcher();
    const err = await launchError(l.launch(spec()));
    expect(err.message).toContain("cluster is destroyed");
    expect(err.message).toContain("ENTRYPOINT");
  });

  it("says how to authenticate on auth failures", async () => {
    fake.setKnobs({ auth: "expired" });
    const { launcher: l } = launcher();
    const err = await launchError(l.launch(spec()));
    expect(err.kind).toBe("auth");
    expect(err.message).toContain("login token expired");
    expect(err.message).toContain("namespace.token_file");
  });

  it("rejects bad labels, env names and cache tags before calling nsc", async () => {
    const { launcher: l } = launcher({ linux_cache_tag: "bad:tag", linux_cache_path: join(tmp.dir, "c") });
    for (const s of [spec({ labels: ["a,b"] }), spec({ env: { "NOT-VALID": "x" } }), spec()]) {
      const err = await launchError(l.launch(s));
      expect(err.kind).toBe("invalid");
    }
    expect(fake.calls("run")).toEqual([]);
  });
});

describe("LinuxLauncher.list / destroy and cacheTag", () => {
  it("lists instances by labels and destroys them; gone counts as destroyed", async () => {
    const { launcher: l } = launcher();
    const { instanceId } = await l.launch(spec());
    const list = await l.list({ [LABEL_OWNER]: "default" });
    expect(list).toEqual([
      expect.objectContaining({ instanceId, labels: expect.objectContaining({ [LABEL_RUNNER]: "nscloud-3f2a" }) as unknown }),
    ]);
    await l.destroy(instanceId);
    await l.destroy(instanceId);
    expect(await l.list({ [LABEL_OWNER]: "default" })).toEqual([]);
  });

  it("expands {labels} to a per-label-set slug", () => {
    expect(cacheTag("nix-{labels}", ["b", "a:host"])).toBe("nix-a-b");
    expect(cacheTag("static", ["x"])).toBe("static");
  });
});
