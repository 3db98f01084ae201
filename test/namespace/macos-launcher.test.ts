import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import type { Logger } from "../../src/http/logger.js";
import { ComputeApi } from "../../src/namespace/compute-api.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER, LaunchError } from "../../src/namespace/launcher.js";
import type { LaunchSpec } from "../../src/namespace/launcher.js";
import { MacosLauncher } from "../../src/namespace/macos-launcher.js";
import { MacosConfigError } from "../../src/namespace/macos-shape.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import { createFakeComputeApi } from "../fakes/compute-api/index.js";
import type { FakeComputeApi } from "../fakes/compute-api/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

const REG_TOKEN = "reg-T0ken-for-macos-4b2c";
const RUNNER_TOKEN = "runner-T0ken-for-macos-9d1e";
const NOW = new Date("2026-05-04T00:00:00.000Z");

let api: FakeComputeApi;
let nscFake: FakeNsc;
let tmp: ReturnType<typeof tempDir>;
let tokenFile: string;
let log: ReturnType<typeof captureLogger>;

beforeEach(async () => {
  api = await createFakeComputeApi({ now: () => NOW });
  tmp = tempDir("fnsc-mac-");
  nscFake = createFakeNsc(join(tmp.dir, "nsc"));
  tokenFile = join(tmp.dir, "token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: api.token }));
  log = captureLogger("debug");
});
afterEach(async () => {
  await api.close();
  tmp.cleanup();
});

function config(ns: Record<string, unknown> = {}) {
  return dispatcherConfigSchema.parse({
    forgejo: { base_url: "https://forgejo.example", token: "pat" },
    namespace: { token_file: tokenFile, region: "ord4", wait_timeout: "5s", ...ns },
  });
}

function nscCli(logger: Logger = log.logger, region: string | undefined = "ord4", createTimeoutMs = 10_000): NscCli {
  return new NscCli({
    binary: nscFake.bin,
    region,
    tokenFile,
    logger,
    env: nscFake.env,
    timeoutMs: { create: createTimeoutMs, ssh: 10_000 },
  });
}

function launcher(ns: Record<string, unknown> = {}, opts: { nsc?: NscCli | undefined } = {}): MacosLauncher {
  const cfg = config(ns);
  return new MacosLauncher({
    config: cfg,
    api: new ComputeApi({ baseUrl: api.url, tokenFile, logger: log.logger }),
    nsc: "nsc" in opts ? opts.nsc : nscCli(log.logger, cfg.namespace.region),
    logger: log.logger,
    now: () => NOW,
    pollIntervalMs: 10,
  });
}

function spec(over: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    runnerName: "nscloud-mac1",
    platform: "macos",
    labels: ["namespace-profile-macos-large", "xcode:host"],
    image: "",
    machineType: "6x14",
    ttlMs: 3_600_000,
    env: { CI_HINT: "it's $(not) `run`" },
    credentials: { mode: "ephemeral", instanceUrl: "https://forgejo.example", uuid: "uuid-1", token: RUNNER_TOKEN },
    jobHandle: "handle-1",
    instanceLabels: { [LABEL_OWNER]: "d1", [LABEL_RUNNER]: "nscloud-mac1", [LABEL_PLATFORM]: "macos", team: "ios" },
    ...over,
  };
}

type CreateBody = {
  shape: { virtualCpu: number; memoryMegabytes: number; machineArch: string; os: string; selectors: { name: string; value: string }[] };
  labels: { name: string; value: string }[];
  deadline: string;
  documentedPurpose: string;
  applications: { name: string; command: string; args: string[]; environment: Record<string, string>; workloadType: string }[];
  volumes?: { tag: string; mountPoint: string; sizeMb?: string; persistencyKind: string }[];
  experimental?: { macosBaseImageId?: string };
};
const created = (i = 0): CreateBody => api.calls("CreateInstance")[i]!.body as CreateBody;

function assertNoSecrets(text: string): void {
  for (const s of [REG_TOKEN, RUNNER_TOKEN, api.token]) expect(text).not.toContain(s);
}

describe("MacosLauncher via the Compute API", () => {
  it("creates a JOB application with shape, selectors, labels, deadline and the secret only in the environment", async () => {
    api.setKnobs({ initialStatus: "RUNNING" });
    const { instanceId } = await launcher().launch(spec());
    const body = created();
    expect(body.shape).toEqual({
      virtualCpu: 6,
      memoryMegabytes: 14336,
      machineArch: "arm64",
      os: "macos",
      selectors: [
        { name: "macos.version", value: "26.x" },
        { name: "image.with", value: "xcode-26" },
      ],
    });
    expect(body.experimental).toEqual({ macosBaseImageId: "tahoe" });
    expect(body.deadline).toBe("2026-05-04T01:00:00.000Z");
    expect(body.documentedPurpose).toBe("forgejo runner nscloud-mac1");
    expect(Object.fromEntries(body.labels.map((l) => [l.name, l.value]))).toEqual({
      [LABEL_OWNER]: "d1",
      [LABEL_RUNNER]: "nscloud-mac1",
      [LABEL_PLATFORM]: "macos",
      team: "ios",
    });
    expect(body.volumes).toBeUndefined();
    const [app] = body.applications;
    expect(app).toMatchObject({ name: "forgejo-runner", command: "/bin/bash", workloadType: "JOB" });
    expect(app!.args[0]).toBe("-lc");
    expect(app!.args[1]).toContain("one-job --config runner.yaml --url https://forgejo.example --uuid uuid-1");
    expect(app!.args[1]).toContain("--handle handle-1");
    expect(app!.args[1]).not.toContain(RUNNER_TOKEN);
    expect(app!.environment).toEqual({
      CI_HINT: "it's $(not) `run`",
      FORGEJO_INSTANCE_URL: "https://forgejo.example",
      FORGEJO_RUNNER_NAME: "nscloud-mac1",
      FORGEJO_RUNNER_LABELS: "namespace-profile-macos-large:host,xcode:host",
      FORGEJO_RUNNER_UUID: "uuid-1",
      FORGEJO_RUNNER_TOKEN: RUNNER_TOKEN,
    });
    expect(api.instances.get(instanceId)!.status).toBe("RUNNING");
    assertNoSecrets(log.text());
    expect(nscFake.calls()).toEqual([]);
  });

  it("waits through CREATING until RUNNING", async () => {
    const l = launcher();
    const launching = l.launch(spec());
    const id = await waitFor(() => [...api.instances.keys()][0], { what: "CreateInstance" });
    await waitFor(() => api.calls("DescribeInstance").length >= 2, { what: "polling" });
    api.setStatus(id, "RUNNING");
    await expect(launching).resolves.toEqual({ instanceId: id });
  });

  it("fails the launch, pointing at the dashboard, when the instance errors before running, and destroys it", async () => {
    const l = launcher();
    const launching = l.launch(spec()).catch((e: unknown) => e);
    const id = await waitFor(() => [...api.instances.keys()][0], { what: "CreateInstance" });
    api.fail(id);
    const err = (await launching) as LaunchError;
    expect(err).toBeInstanceOf(LaunchError);
    expect(err.kind).toBe("transient");
    expect(err.instanceId).toBe(id);
    expect(err.message).toContain(
      `ended (ERROR) before it ran: the Compute API reports no reason; see the instance in the Namespace dashboard (https://cloud.namespace.so/fake-workspace/instance/${id})`,
    );
    expect(api.calls("DestroyInstance")).toHaveLength(1);
  });

  it("gives up after namespace.wait_timeout and destroys the instance", async () => {
    const err = (await launcher({ wait_timeout: "100ms" })
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("transient");
    expect(err.message).toContain("still CREATING after namespace.wait_timeout");
    const id = [...api.instances.keys()][0]!;
    expect(api.instances.get(id)!.status).toBe("DESTROYED");
  });

  it("normalises the machine type up to a macOS shape and refuses what cannot fit", async () => {
    api.setKnobs({ initialStatus: "RUNNING" });
    const l = launcher();
    await l.launch(spec({ machineType: "macos/arm64:5x10" }));
    expect(created().shape).toMatchObject({ virtualCpu: 6, memoryMegabytes: 14336 });
    expect(log.text()).toContain("rounded up to the next macOS shape");
    await l.launch(spec({ machineType: "12x28672" }));
    expect(created(1).shape).toMatchObject({ virtualCpu: 12, memoryMegabytes: 28672 });
    await l.launch(spec({ machineType: "" }));
    expect(created(2).shape).toMatchObject({ virtualCpu: 6, memoryMegabytes: 14336 });

    for (const [mt, text] of [
      ["16x64", "larger than any macOS shape"],
      ["linux/amd64:4x8", "is for linux"],
      ["macos/amd64:6x14", "arm64 only"],
      ["big", "not CPUxMEM"],
    ] as const) {
      const err = (await l.launch(spec({ machineType: mt })).catch((e: unknown) => e)) as LaunchError;
      expect(err.kind, mt).toBe("invalid");
      expect(err.message).toContain(text);
      expect(err.message).toContain("vCPU 4/6/8/12 × memory 7/14/28/56 GB");
    }
    expect(api.calls("CreateInstance")).toHaveLength(3);
  });

  it("turns base image presets and raw selectors into the request, and refuses unknown presets at start-up", async () => {
    api.setKnobs({ initialStatus: "RUNNING" });
    await launcher({ macos_base_image_id: "sequoia" }).launch(spec());
    expect(created().shape.selectors).toEqual([{ name: "macos.version", value: "15.x" }]);
    expect(created().experimental).toBeUndefined();
    await launcher({ macos_base_image_id: "sonoma" }).launch(spec());
    expect(created(1).shape.selectors).toEqual([{ name: "macos.version", value: "14.x" }]);
    await launcher({ macos_base_image_id: "macos.version=15.x, image.with=xcode-16.2" }).launch(spec());
    expect(created(2).shape.selectors).toEqual([
      { name: "macos.version", value: "15.x" },
      { name: "image.with", value: "xcode-16.2" },
    ]);
    expect(() => launcher({ macos_base_image_id: "ventura" })).toThrow(MacosConfigError);
    expect(() => launcher({ macos_base_image_id: "ventura" })).toThrow(/tahoe, sequoia, sonoma/);
    expect(() => launcher({ macos_base_image_id: "macos.version=15.x,oops" })).toThrow(/invalid selector "oops"/);
    expect(() => launcher({ macos_machine_type: "32x128" })).toThrow(/larger than any macOS shape/);
    expect(() => launcher({ macos_cache_tag: "t", macos_cache_size: "lots" })).toThrow(/not a size/);
  });

  it("requests a cache volume per label set and exports NSC_CACHE_PATH", async () => {
    api.setKnobs({ initialStatus: "RUNNING" });
    await launcher({ macos_cache_tag: "mac-{labels}", macos_cache_size: "50gb" }).launch(spec());
    expect(created().volumes).toEqual([
      {
        tag: "mac-namespace-profile-macos-large-xcode",
        mountPoint: "/Users/runner/.cache/nscloud",
        sizeMb: "51200",
        persistencyKind: "CACHE",
      },
    ]);
    expect(created().applications[0]!.environment.NSC_CACHE_PATH).toBe("/Users/runner/.cache/nscloud");
    expect(created().applications[0]!.args[1]).toContain("/Users/runner/.cache/nscloud/actcache");
  });

  it("maps API errors to launch error kinds and does not fall back on auth or invalid requests", async () => {
    writeFileSync(tokenFile, JSON.stringify({ bearer_token: "nsrt_wrong" }));
    const auth = (await launcher()
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(auth.kind).toBe("auth");
    expect(auth.message).toContain("namespace.token_file");
    writeFileSync(tokenFile, JSON.stringify({ bearer_token: api.token }));

    api.setKnobs({
      failNext: [{ method: "CreateInstance", code: "invalid_argument", status: 400, message: "selector not allowed", times: 1 }],
    });
    const invalid = (await launcher()
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(invalid.kind).toBe("invalid");
    expect(invalid.message).toContain("selector not allowed");
    expect(nscFake.calls("create")).toEqual([]);

    api.setKnobs({ capacity: 1 });
    const capacity = (await launcher({ macos_fallback_nsc: false }, { nsc: undefined })
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(capacity.kind).toBe("capacity");
    expect(capacity.message).toContain("resource_exhausted");
    assertNoSecrets(`${auth.message}${invalid.message}${capacity.message}${log.text()}`);
  });

  it("lists its live instances with their labels (what restart recovery reads) and destroys idempotently", async () => {
    api.setKnobs({ initialStatus: "RUNNING" });
    const first = launcher();
    const { instanceId } = await first.launch(spec());
    const done = await first.launch(
      spec({ runnerName: "nscloud-mac2", instanceLabels: { ...spec().instanceLabels, [LABEL_RUNNER]: "nscloud-mac2" } }),
    );
    api.finish(done.instanceId);
    // Somebody else's instance and a Windows-labelled one with our owner label stay invisible.
    api.addInstance({
      labels: [
        { name: LABEL_OWNER, value: "other" },
        { name: LABEL_PLATFORM, value: "macos" },
      ],
    });
    api.addInstance({
      labels: [
        { name: LABEL_OWNER, value: "d1" },
        { name: LABEL_PLATFORM, value: "windows" },
      ],
    });

    // A fresh launcher, as after a dispatcher restart.
    const after = launcher();
    const listed = await after.list({ [LABEL_OWNER]: "d1" });
    expect(listed).toEqual([
      {
        instanceId,
        labels: { [LABEL_OWNER]: "d1", [LABEL_RUNNER]: "nscloud-mac1", [LABEL_PLATFORM]: "macos", team: "ios" },
        createdAt: expect.any(String),
      },
    ]);
    expect(api.calls("ListInstances").at(-1)!.body).toEqual({
      labelFilter: [
        { name: LABEL_OWNER, value: "d1", op: "EQUAL" },
        { name: LABEL_PLATFORM, value: "macos", op: "EQUAL" },
      ],
    });
    await after.destroy(instanceId);
    await after.destroy(instanceId);
    await after.destroy("neverexisted1");
    expect(await after.list({ [LABEL_OWNER]: "d1" })).toEqual([]);
  });

  it("throws when the list call fails, so supervision judges nobody on a failed look", async () => {
    api.setKnobs({ failNext: [{ method: "ListInstances", code: "unavailable", status: 503, times: 1 }] });
    await expect(launcher().list({ [LABEL_OWNER]: "d1" })).rejects.toThrow(/unavailable/);
  });
});

describe("MacosLauncher fallback to nsc create + nsc ssh", () => {
  it("falls back on capacity: nsc create with the macOS shape and selectors, then the detached script over ssh", async () => {
    api.setKnobs({ capacity: true });
    const { instanceId } = await launcher({ macos_cache_tag: "mac" }).launch(
      spec({ credentials: { mode: "token", instanceUrl: "https://forgejo.example", registrationToken: REG_TOKEN } }),
    );
    expect(log.text()).toContain("falling back to nsc create");

    const [create] = nscFake.calls("create");
    expect(create!.region).toBe("ord4");
    const argv = create!.argv;
    const flag = (name: string) => argv[argv.indexOf(name) + 1];
    expect(flag("--machine_type")).toBe("macos/arm64:6x14");
    expect(flag("--selectors")).toBe("macos.version=26.x,image.with=xcode-26");
    expect(argv).toContain("--bare");
    expect(argv).toContain("--cidfile");
    expect(argv).toContain("--output_json_to");
    expect(flag("--volume")).toBe("cache:mac:/Users/runner/.cache/nscloud");
    expect(argv.filter((a, i) => argv[i - 1] === "--label").sort()).toEqual(
      [`${LABEL_OWNER}=d1`, `${LABEL_RUNNER}=nscloud-mac1`, `${LABEL_PLATFORM}=macos`, "team=ios"].sort(),
    );
    expect(argv.join(" ")).not.toContain(REG_TOKEN);

    const inst = nscFake.instances().find((i) => i.id === instanceId)!;
    expect(inst.shape).toMatchObject({ os: "macos" });
    expect(inst.bare).toBe(true);
    const [session] = inst.ssh_sessions;
    expect(session!.command).toBe("/bin/bash");
    expect(session!.stdin).toContain(`export FORGEJO_RUNNER_TOKEN=${REG_TOKEN}`);
    expect(session!.stdin).toContain("nohup /bin/bash");
    expect(session!.stdin).toContain(`nsc --region ord4 destroy --force ${instanceId}`);
    const [ssh] = nscFake.calls("ssh");
    expect(ssh!.argv).toEqual(["--region", "ord4", "ssh", instanceId, "-T", "--", "/bin/bash"]);
    assertNoSecrets(log.text());
  });

  it("with no region configured, lists and destroys fallback instances through nsc too", async () => {
    api.setKnobs({ capacity: true });
    const l = launcher({ region: undefined });
    const { instanceId } = await l.launch(spec());
    const listed = await l.list({ [LABEL_OWNER]: "d1" });
    expect(listed.map((i) => i.instanceId)).toEqual([instanceId]);
    expect(listed[0]!.labels[LABEL_RUNNER]).toBe("nscloud-mac1");
    await l.destroy(instanceId);
    expect(nscFake.instances().map((i) => i.id)).not.toContain(instanceId);
    expect(nscFake.calls("destroy")[0]!.argv).toContain("--force");
  });

  it("reports a fallback whose nsc create blocks on capacity as capacity, after the outer timeout", async () => {
    api.setKnobs({ capacity: true });
    nscFake.setKnobs({ createCapacity: true, createRetryLogMs: 100 });
    const err = (await launcher({}, { nsc: nscCli(log.logger, "ord4", 1_500) })
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("capacity");
    expect(err.message).toMatch(/macOS fallback \(nsc create\).*did not finish within 2s/);
    expect(nscFake.instances()).toEqual([]);
  });

  it("destroys the fallback instance when the script cannot be started over ssh", async () => {
    api.setKnobs({ failNext: [{ method: "CreateInstance", code: "unavailable", status: 503, times: 1 }] });
    nscFake.setKnobs({ ssh: { stderr: "bash: permission denied\n", exitCode: 126 } });
    const err = (await launcher()
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("transient");
    expect(err.message).toContain("over nsc ssh failed");
    expect(err.message).toContain("Process exited with status 126");
    expect(nscFake.instances()).toEqual([]);
    assertNoSecrets(err.message + log.text());
  });

  it("is not used when namespace.macos_fallback_nsc is false", async () => {
    api.setKnobs({ failNext: [{ method: "CreateInstance", code: "unavailable", status: 503, times: 1 }] });
    const err = (await launcher({ macos_fallback_nsc: false })
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("transient");
    expect(nscFake.calls("create")).toEqual([]);
  });
});
