import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { ComputeApi } from "../../src/namespace/compute-api.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER, LaunchError } from "../../src/namespace/launcher.js";
import type { LaunchSpec } from "../../src/namespace/launcher.js";
import { LinuxConfigError } from "../../src/namespace/linux-compute.js";
import { LinuxLauncher } from "../../src/namespace/linux-launcher.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import { labelSlug } from "../../src/runner/labels.js";
import { createFakeComputeApi } from "../fakes/compute-api/index.js";
import type { FakeComputeApi } from "../fakes/compute-api/index.js";
import { FAKE_RUNNER_DIR } from "../fakes/forgejo-runner/index.js";
import type { FakeRunnerCall } from "../fakes/forgejo-runner/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

/**
 * namespace.linux_launch: compute_api — the Linux launcher creating its instance through the
 * Compute API, against a fake Compute API whose Linux instances live in the fake nsc's state (so
 * the launcher's nsc list/destroy see them and the executing stand-in runs them).
 */

const RUNNER_TOKEN = "linux-api-runner-T0ken-5e8a91c4";
const REG_TOKEN = "linux-api-reg-T0ken-0b7d22f1";
/** The launchers' clock: real time, because deadlines reach the fake nsc, which keeps its own. */
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);

let tmp: ReturnType<typeof tempDir>;
let nscFake: FakeNsc;
let api: FakeComputeApi;
let tokenFile: string;
let logs: ReturnType<typeof captureLogger>;

beforeEach(async () => {
  tmp = tempDir("fnsc-linux-api-");
  nscFake = createFakeNsc(join(tmp.dir, "nsc"));
  api = await createFakeComputeApi({ nsc: nscFake, region: "ord4" });
  tokenFile = join(tmp.dir, "token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: api.token }));
  logs = captureLogger("debug");
});
afterEach(async () => {
  nscFake.destroyAll();
  await api.close();
  tmp.cleanup();
});

function config(ns: Record<string, unknown> = {}) {
  return dispatcherConfigSchema.parse({
    forgejo: { base_url: "https://forgejo.example", token: "pat" },
    namespace: {
      nsc_binary: nscFake.bin,
      region: "ord4",
      token_file: tokenFile,
      linux_launch: "compute_api",
      wait_timeout: "5s",
      workdir: join(tmp.dir, "container", "work"),
      environment: { FROM_CONFIG: "cfg", TRICKY: 'a=b,"c"' },
      ...ns,
    },
  });
}

function launcher(ns: Record<string, unknown> = {}): LinuxLauncher {
  const cfg = config(ns);
  return new LinuxLauncher({
    config: cfg,
    nsc: new NscCli({ binary: nscFake.bin, region: cfg.namespace.region, tokenFile, logger: logs.logger, env: nscFake.env }),
    api: new ComputeApi({ baseUrl: api.url, tokenFile, logger: logs.logger }),
    logger: logs.logger,
    now: () => NOW,
    pollIntervalMs: 10,
  });
}

function spec(over: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    runnerName: "nscloud-api1",
    platform: "linux",
    labels: ["namespace-profile-linux-medium"],
    image: "code.forgejo.org/forgejo/runner:12.13.2",
    machineType: "4x8",
    ttlMs: 20 * 60_000,
    env: { FROM_REQUEST: "req" },
    credentials: { mode: "ephemeral", instanceUrl: "https://forgejo.example", uuid: "uuid-1", token: RUNNER_TOKEN },
    jobHandle: "handle-1",
    instanceLabels: { [LABEL_OWNER]: "default", [LABEL_RUNNER]: "nscloud-api1", [LABEL_PLATFORM]: "linux", team: "ci" },
    ...over,
  };
}

type ContainerBody = {
  name: string;
  imageRef: string;
  args: string[];
  environment: Record<string, string>;
  workloadType: string;
  volumes?: unknown[];
  user?: unknown;
};
type CreateBody = {
  shape: Record<string, unknown>;
  labels: { name: string; value: string }[];
  deadline: string;
  documentedPurpose: string;
  containers: ContainerBody[];
};
const created = (i = 0): CreateBody => api.calls("CreateInstance")[i]!.body as CreateBody;

/** Every nsc invocation as the fake logged it (argv, stdout, stderr), the fake's own `__fake` calls included. */
const nscLog = (): string => readFileSync(nscFake.logPath, "utf8");

/** The launch's rejection, which must be a LaunchError. */
const launchError = (p: Promise<unknown>): Promise<LaunchError> =>
  p.then(
    () => expect.fail("the launch succeeded"),
    (e: unknown) => (expect(e).toBeInstanceOf(LaunchError), e as LaunchError),
  );

describe("LinuxLauncher with namespace.linux_launch: compute_api", () => {
  it("creates one JOB container with the whole runner environment in the request body; no nsc command line carries a value", async () => {
    const cachePath = join(tmp.dir, "container", "cache");
    const l = launcher({
      linux_cache_tag: "forgejo-{labels}",
      linux_cache_path: cachePath,
      linux_cache_size: "50gb",
      network: "host",
      machine_type: "2x4",
    });
    const launching = l.launch(spec({ machineType: "linux/arm64:8x16" }));
    const id = await waitFor(() => [...api.instances.keys()][0], { what: "CreateInstance" });
    await waitFor(() => api.calls("DescribeInstance").length >= 1, { what: "the launcher to poll while CREATING" });
    api.setStatus(id, "RUNNING");
    await expect(launching).resolves.toEqual({ instanceId: id });

    const body = created();
    expect(body.shape).toEqual({ virtualCpu: 8, memoryMegabytes: 16384, machineArch: "arm64", os: "linux" });
    expect(body.deadline).toBe(new Date(NOW.getTime() + 20 * 60_000).toISOString());
    expect(body.documentedPurpose).toBe("forgejo runner nscloud-api1");
    expect(body.labels.map((x) => `${x.name}=${x.value}`).sort()).toEqual([
      "forgejo-nsc.owner=default",
      "forgejo-nsc.platform=linux",
      "forgejo-nsc.runner=nscloud-api1",
      "team=ci",
    ]);
    expect(body.containers).toHaveLength(1);
    const c = body.containers[0]!;
    expect(c).toMatchObject({
      name: "nscloud-api1",
      imageRef: "code.forgejo.org/forgejo/runner:12.13.2",
      workloadType: "JOB",
      network: "HOST",
    });
    // The public ContainerRequest has no user override; nothing pretends otherwise.
    expect(c).not.toHaveProperty("user");
    expect(c.volumes).toEqual([
      { tag: `forgejo-${labelSlug(spec().labels)}`, mountPoint: cachePath, sizeMb: "51200", persistencyKind: "CACHE" },
    ]);
    expect(c.environment).toEqual({
      FORGEJO_INSTANCE_URL: "https://forgejo.example",
      FORGEJO_RUNNER_LABELS: "namespace-profile-linux-medium:host",
      FORGEJO_RUNNER_NAME: "nscloud-api1",
      FORGEJO_RUNNER_TOKEN: RUNNER_TOKEN,
      FORGEJO_RUNNER_UUID: "uuid-1",
      FROM_CONFIG: "cfg",
      FROM_REQUEST: "req",
      NSC_CACHE_PATH: cachePath,
      TRICKY: 'a=b,"c"',
    });
    expect(c.args.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    // Values nsc's -e would mangle need no script export here, and the secret is never in the script.
    expect(c.args[2]).not.toContain(RUNNER_TOKEN);
    expect(c.args[2]).not.toMatch(/^export /m);

    // The instance lives where nsc sees it, with the environment the request carried.
    const [inst] = nscFake.instances();
    expect(inst).toMatchObject({
      id,
      region: "ord4",
      created_by: "compute-api",
      user: null,
      labels: { [LABEL_RUNNER]: "nscloud-api1", [LABEL_PLATFORM]: "linux" },
    });
    expect(inst!.env!.FORGEJO_RUNNER_TOKEN).toBe(RUNNER_TOKEN);
    expect(await l.list({ [LABEL_OWNER]: "default" })).toEqual([
      { instanceId: id, labels: expect.objectContaining({ [LABEL_RUNNER]: "nscloud-api1" }), createdAt: expect.any(String) },
    ]);

    expect(nscFake.calls("run")).toEqual([]);
    expect(nscLog()).not.toContain(RUNNER_TOKEN);
    expect(logs.text()).not.toContain(RUNNER_TOKEN);
    await l.destroy(id);
    expect(nscFake.instances()).toEqual([]);
  });

  it("the container really runs (executing stand-in): the runner gets the token, and the instance ends with it", async () => {
    const runnerLog = join(tmp.dir, "runner-calls.jsonl");
    writeFileSync(runnerLog, "");
    nscFake.setKnobs({ execute: { pathPrefix: FAKE_RUNNER_DIR } });
    api.setKnobs({ initialStatus: "RUNNING" });
    const l = launcher({ environment: { FAKE_RUNNER_LOG: runnerLog } });
    const { instanceId } = await l.launch(
      spec({ credentials: { mode: "token", instanceUrl: "https://forgejo.example", registrationToken: REG_TOKEN }, jobHandle: undefined }),
    );

    const calls = await waitFor(
      () => {
        const lines = readFileSync(runnerLog, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((x) => JSON.parse(x) as FakeRunnerCall);
        return lines.some((x) => x.command === "one-job") ? lines : undefined;
      },
      { what: "forgejo-runner one-job in the container" },
    );
    const register = calls.find((x) => x.command === "register")!;
    expect(register.argv).toEqual(expect.arrayContaining(["--token", REG_TOKEN, "--name", "nscloud-api1"]));
    expect(register.problems).toEqual([]);
    // The bootstrap unset the token before starting the runner that runs the jobs.
    expect(calls.find((x) => x.command === "one-job")!.env.FORGEJO_RUNNER_TOKEN).toBeUndefined();

    // The container exited: the instance is gone for nsc and for the API alike.
    await waitFor(async () => (await l.list({ [LABEL_RUNNER]: "nscloud-api1" })).length === 0, {
      what: "the instance to end with its container",
    });
    const ended = nscFake.instances({ includeDestroyed: true }).find((i) => i.id === instanceId)!;
    expect(ended.destroy_reason).toBe("container exited");
    expect(ended.container!.exit_code).toBe(0);
    const described = await new ComputeApi({ baseUrl: api.url, tokenFile }).describeInstance(instanceId);
    expect(described.metadata.status).toBe("DESTROYED");
    expect(nscLog()).not.toContain(REG_TOKEN);
  });

  it("destroys an instance that errors before it runs and fails the launch as transient", async () => {
    const l = launcher();
    const launching = launchError(l.launch(spec()));
    const id = await waitFor(() => [...api.instances.keys()][0], { what: "CreateInstance" });
    api.fail(id);
    const err = await launching;
    expect(err.kind).toBe("transient");
    expect(err.instanceId).toBe(id);
    expect(err.message).toContain(`Linux instance ${id} ended (ERROR) before it ran: the Compute API reports no reason`);
    expect(nscFake.instances()).toEqual([]);
    expect(api.calls("DestroyInstance").map((r) => (r.body as { instanceId: string }).instanceId)).toEqual([id]);
  });

  it("gives up after namespace.wait_timeout and destroys the instance", async () => {
    const err = await launchError(launcher({ wait_timeout: "100ms" }).launch(spec()));
    expect(err.kind).toBe("transient");
    expect(err.message).toContain("still CREATING after namespace.wait_timeout");
    expect(nscFake.instances()).toEqual([]);
  });

  it("maps API errors to kinds; only a call that may have reached the server looks for and removes a left-behind instance", async () => {
    api.setKnobs({ capacity: 1 });
    const capacity = await launchError(launcher().launch(spec()));
    expect(capacity.kind).toBe("capacity");
    api.setKnobs({ failNext: [{ method: "CreateInstance", code: "invalid_argument", status: 400, message: "bad shape", times: 1 }] });
    const invalid = await launchError(launcher().launch(spec()));
    expect(invalid.kind).toBe("invalid");
    expect(invalid.message).toContain("bad shape");
    writeFileSync(tokenFile, JSON.stringify({ bearer_token: "nsrt_wrong" }));
    const auth = await launchError(launcher().launch(spec()));
    expect(auth.kind).toBe("auth");
    writeFileSync(tokenFile, JSON.stringify({ bearer_token: api.token }));
    expect(nscFake.calls("list")).toEqual([]);

    // An instance an earlier, timed-out create made, carrying this runner's labels.
    const left = await execa(
      nscFake.bin,
      [
        "--region",
        "ord4",
        "run",
        "-o",
        "json",
        "--image",
        "img",
        "--label",
        `${LABEL_RUNNER}=nscloud-api1`,
        "--label",
        `${LABEL_OWNER}=default`,
        "--",
        "true",
      ],
      { env: nscFake.env },
    );
    const leftId = (JSON.parse(left.stdout) as { instance_id: string }).instance_id;
    api.setKnobs({
      failNext: [{ method: "CreateInstance", code: "unavailable", status: 503, message: `echoed ${RUNNER_TOKEN}`, times: 1 }],
    });
    const transient = await launchError(launcher().launch(spec()));
    expect(transient.kind).toBe("transient");
    expect(transient.message).toContain(
      `creating linux instance for runner nscloud-api1 failed: Namespace Compute API CreateInstance failed (unavailable, HTTP 503): echoed [redacted]`,
    );
    expect(transient.message).toContain(`destroyed instance ${leftId} it left behind`);
    expect(nscFake.instances()).toEqual([]);
    // A server echoing a request value does not put it in the error or the log.
    expect(transient.message).not.toContain(RUNNER_TOKEN);
    expect(logs.text()).not.toContain(RUNNER_TOKEN);
  });
});

describe("namespace.linux_launch configuration", () => {
  const base = { forgejo: { base_url: "https://forgejo.example", token: "pat" } };
  const problems = (namespace: Record<string, unknown>) => {
    const r = dispatcherConfigSchema.safeParse({ ...base, namespace });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };

  it("defaults to nsc, and refuses compute_api without a token file or a region, saying what to set", () => {
    expect(dispatcherConfigSchema.parse(base).namespace.linux_launch).toBe("nsc");
    expect(problems({ linux_launch: "compute_api", region: "ord4" })).toEqual([
      expect.stringMatching(/^namespace\.linux_launch: compute_api needs namespace\.token_file .*use linux_launch: nsc$/),
    ]);
    expect(problems({ linux_launch: "compute_api", token_file: "/t.json" })).toEqual([
      expect.stringMatching(/^namespace\.linux_launch: compute_api needs namespace\.region/),
    ]);
    expect(problems({ linux_launch: "compute_api", token_file: "/t.json", region: "ord4" })).toEqual([]);
    expect(problems({ linux_launch: "api" })).toEqual([expect.stringMatching(/^namespace\.linux_launch: /)]);
  });

  it("refuses at start-up what the Compute API cannot take: no client, a non-Linux or malformed machine type, an unknown network", () => {
    const nsc = new NscCli({ binary: nscFake.bin, region: "ord4", logger: logs.logger, env: nscFake.env });
    expect(() => new LinuxLauncher({ config: config(), nsc, logger: logs.logger })).toThrow(
      /no Compute API client .*namespace\.token_file/,
    );
    expect(() => launcher({ machine_type: "windows/amd64:4x8" })).toThrow(LinuxConfigError);
    expect(() => launcher({ machine_type: "4cpu" })).toThrow(/not CPUxMEM/);
    expect(() => launcher({ machine_type: "linux/riscv64:4x8" })).toThrow(/amd64 or arm64/);
    expect(() => launcher({ network: "none" })).toThrow(/"bridge" and "host" only/);
    expect(() => launcher({ linux_cache_tag: "c", linux_cache_size: "lots" })).toThrow(/not a size/);
  });
});
