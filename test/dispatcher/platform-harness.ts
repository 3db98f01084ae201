import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import type { DispatcherConfig } from "../../src/config/dispatcher-schema.js";
import { createDispatcher } from "../../src/dispatcher/app.js";
import type { Dispatcher } from "../../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../../src/dispatcher/wiring.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER } from "../../src/namespace/launcher.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import type { Platform, Store } from "../../src/store/types.js";
import { createFakeComputeApi } from "../fakes/compute-api/index.js";
import type { FakeComputeApi, FakeInstance } from "../fakes/compute-api/index.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { createFakeWinRm } from "../fakes/winrm/index.js";
import type { FakeWinRm } from "../fakes/winrm/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { recordSecrets } from "../helpers/secrets.js";
import { tempDir } from "../helpers/tmp.js";

/**
 * One world for the platform lifecycle suite: the fake Forgejo 15, the fake nsc, the fake Compute
 * API and the fake WinRM endpoint (reached through the fake nsc's port-forward), and a real
 * dispatcher wired by src/dispatcher/wiring.ts — real ForgejoClient, NscCli, ComputeApi, all
 * three real launchers, a real SQLite store in a temp dir — with supervision driven by hand.
 */

export const PLATFORMS = ["linux", "macos", "windows"] as const satisfies readonly Platform[];

/** The label each platform is dispatched with (platformForLabels routes on it). */
export const PLATFORM_LABEL: Readonly<Record<Platform, string>> = {
  linux: "namespace-profile-linux-medium",
  macos: "namespace-profile-macos-large",
  windows: "namespace-profile-windows-medium",
};

export const DISPATCHER_ID = "lifecycle";
export const REPO = { owner: "example", name: "app" } as const;

/** An instance as the platform's fake sees it. */
export interface FakeInstanceView {
  id: string;
  live: boolean;
  labels: Record<string, string>;
  /** How it ended: "destroy" = someone called destroy (nsc destroy / DestroyInstance). */
  ended?: "destroy" | "exit" | "deadline" | "other" | undefined;
}

/** What differs between platforms, seen from the test: each reads and drives its own fake. */
export interface PlatformDriver {
  readonly platform: Platform;
  readonly label: string;
  /** Every instance this platform's fake holds, live and ended. */
  instances(): FakeInstanceView[];
  instance(id: string): FakeInstanceView | undefined;
  /** How many instances were asked of this platform's fake (nsc run / nsc create / CreateInstance). */
  launches(): number;
  /** Plays the platform's part while a launch waits: macOS instances walk CREATING → RUNNING. */
  progress(): void;
  /** The runner token as it reached the machine's bootstrap environment. */
  deliveredToken(runnerName: string): string;
  /** What happens on the platform when forgejo-runner finishes its one job. */
  jobEnded(instanceId: string): void;
  /** Creates an instance directly in the fake (not through a launcher) carrying these labels. */
  addInstance(labels: Record<string, string>): Promise<string>;
}

export interface RunningDispatcher {
  d: Dispatcher;
  store: Store;
  stop(): Promise<void>;
}

export interface PlatformWorld {
  platform: Platform;
  driver: PlatformDriver;
  forgejo: FakeForgejo;
  nsc: FakeNsc;
  compute: FakeComputeApi;
  winrm: FakeWinRm;
  config: DispatcherConfig;
  /** The dispatcher currently running (replaced by restart). */
  current: RunningDispatcher;
  /** Captured log text of every dispatcher this world started. */
  logs(): string;
  /** Secrets of this world: none may appear in logs or API answers. */
  secrets(): string[];
  /** Moves the dispatcher's injected clock. */
  advanceDispatcher(ms: number): void;
  /** Moves Namespace's clocks: the fake nsc's and the fake Compute API's. */
  advanceNamespace(ms: number): void;
  /** Stops the dispatcher and closes its store, runs `between` on the SQLite file, starts a new one. */
  restart(between?: (store: Store) => Promise<void>): Promise<RunningDispatcher>;
  request(method: string, url: string, payload?: object): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startPlatformWorld(platform: Platform): Promise<PlatformWorld> {
  const tmp = tempDir(`fnsc-life-${platform}-`);
  const apiToken = `life-api-${randomBytes(12).toString("hex")}`;
  const winPassword = `Win-${randomBytes(9).toString("base64url")}-9z!`;
  let dispatcherOffset = 0;
  let namespaceOffset = 0;
  const now = () => new Date(Date.now() + dispatcherOffset);

  const forgejo = await startFakeForgejo({ repos: [{ ...REPO }] });
  const compute = await createFakeComputeApi({ now: () => new Date(Date.now() + namespaceOffset) });
  const winrm = await createFakeWinRm({ username: "runneradmin", password: winPassword });
  const nsc = createFakeNsc(join(tmp.dir, "nsc"), {
    windowsCredentials: { username: "runneradmin", password: winPassword },
    forward: { "5985": winrm.endpoint },
  });
  recordSecrets([apiToken, winPassword, compute.token]);
  const tokenFile = join(tmp.dir, "namespace-token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: compute.token }), { mode: 0o600 });

  const config = dispatcherConfigSchema.parse({
    listen: "127.0.0.1:0",
    forgejo: { base_url: forgejo.url, token: FAKE_ADMIN_TOKEN, timeout: "5s" },
    namespace: {
      nsc_binary: nsc.bin,
      token_file: tokenFile,
      region: "ord4",
      compute_base_url: compute.url,
      wait_timeout: "20s",
      workdir: join(tmp.dir, "runner-work"),
    },
    // Upstream publishes no Windows build: the operator hosts one (never fetched in these tests).
    runner: {
      binaries: {
        windows_amd64: {
          url: "https://forgejo.example/api/packages/ops/generic/forgejo-runner/12.13.2/forgejo-runner.exe",
          sha256: "0".repeat(64),
        },
      },
    },
    // A launch left hanging by a failed test must not hold the teardown past vitest's hook timeout.
    dispatcher: { id: DISPATCHER_ID, state_path: join(tmp.dir, "state.db"), shutdown_timeout: "5s" },
    auth: { tokens: [apiToken] },
  });

  const cap = captureLogger("debug");
  const driver = driverFor(platform, { nsc, compute, winrm, tokenFile, logger: cap.logger });

  async function startDispatcher(between?: (store: Store) => Promise<void>): Promise<RunningDispatcher> {
    // The real wiring, with the knobs only tests turn: the macOS DescribeInstance poll, the WinRM
    // retry pause, the fake nsc's environment and this world's dispatcher clock.
    const deps = await buildDispatcherDeps(config, cap.logger, { now, nscEnv: nsc.env, macosPollIntervalMs: 20, winrmRetryIntervalMs: 20 });
    const { store } = deps;
    if (between) await between(store);
    const d = await createDispatcher({ ...deps, timers: false });
    await d.start();
    return {
      d,
      store,
      async stop() {
        await d.stop();
        await store.close();
      },
    };
  }

  const world: PlatformWorld = {
    platform,
    driver,
    forgejo,
    nsc,
    compute,
    winrm,
    config,
    current: await startDispatcher(),
    logs: cap.text,
    secrets: () => [apiToken, winPassword, compute.token, FAKE_ADMIN_TOKEN, ...forgejo.state.runners.map((r) => r.token)],
    advanceDispatcher(ms) {
      dispatcherOffset += ms;
    },
    advanceNamespace(ms) {
      namespaceOffset += ms;
      nsc.advanceTime(ms);
    },
    async restart(between) {
      await world.current.stop();
      world.current = await startDispatcher(between);
      return world.current;
    },
    async request(method, url, payload) {
      const res = await world.current.d.app.inject({
        method: method as "GET",
        url,
        headers: { authorization: `Bearer ${apiToken}` },
        ...(payload ? { payload } : {}),
      });
      return { status: res.statusCode, body: res.body ? res.json() : undefined };
    },
    async close() {
      await world.current.stop().catch(() => undefined);
      await Promise.allSettled([forgejo.close(), compute.close(), winrm.close()]);
      tmp.cleanup();
    },
  };
  return world;
}

interface DriverDeps {
  nsc: FakeNsc;
  compute: FakeComputeApi;
  winrm: FakeWinRm;
  tokenFile: string;
  logger: ReturnType<typeof captureLogger>["logger"];
}

function driverFor(platform: Platform, deps: DriverDeps): PlatformDriver {
  switch (platform) {
    case "linux":
      return nscDriver("linux", deps);
    case "windows":
      return nscDriver("windows", deps);
    case "macos":
      return computeDriver(deps);
  }
}

/** Linux (`nsc run`) and Windows (`nsc create` + WinRM) both live in the fake nsc. */
function nscDriver(platform: "linux" | "windows", { nsc, winrm, tokenFile, logger }: DriverDeps): PlatformDriver {
  const cli = new NscCli({ binary: nsc.bin, region: "ord4", tokenFile, logger, env: nsc.env });
  const kind = platform === "linux" ? "run" : "create";
  const view = (i: ReturnType<FakeNsc["instances"]>[number]): FakeInstanceView => ({
    id: i.id,
    live: !i.destroyed_at,
    labels: i.labels,
    ended: !i.destroyed_at
      ? undefined
      : i.destroy_reason === "destroy"
        ? "destroy"
        : i.destroy_reason === "container exited"
          ? "exit"
          : i.destroy_reason === "deadline"
            ? "deadline"
            : "other",
  });
  const mine = () => nsc.instances({ includeDestroyed: true }).filter((i) => i.kind === kind);
  return {
    platform,
    label: PLATFORM_LABEL[platform],
    instances: () => mine().map(view),
    instance(id) {
      const i = mine().find((x) => x.id === id);
      return i ? view(i) : undefined;
    },
    launches: () => nsc.calls(kind).length,
    progress: () => undefined,
    deliveredToken(runnerName) {
      if (platform === "linux") {
        // The runner token travels as `-e FORGEJO_RUNNER_TOKEN=…` into the container.
        const inst = mine().find((i) => i.labels[LABEL_RUNNER] === runnerName);
        const token = inst?.env?.FORGEJO_RUNNER_TOKEN;
        if (!token) throw new Error(`no nsc run instance of ${runnerName} carries FORGEJO_RUNNER_TOKEN`);
        return token;
      }
      // Windows: it travels in the WinRM shell's environment, next to the runner's name.
      const shell = [...winrm.shells.values()].find((s) => s.env.FORGEJO_RUNNER_NAME === runnerName);
      const token = shell?.env.FORGEJO_RUNNER_TOKEN;
      if (!token) throw new Error(`no WinRM shell for ${runnerName} carried FORGEJO_RUNNER_TOKEN`);
      return token;
    },
    jobEnded(instanceId) {
      // A Linux container runs the one job and exits; Namespace then destroys the instance.
      // A Windows machine does not end with its job (the script's own shutdown is best effort).
      if (platform === "linux") nsc.exitContainer(instanceId, 0);
    },
    async addInstance(labels) {
      if (platform === "linux") {
        const { instanceId } = await cli.run({ image: "busybox", command: ["sleep", "3600"], labels, durationMs: 3_600_000 });
        return instanceId;
      }
      const { instanceId } = await cli.create({ machineType: "windows/amd64:4x8", labels, durationMs: 3_600_000 });
      return instanceId;
    },
  };
}

/** macOS lives in the fake Compute API. */
function computeDriver({ compute }: DriverDeps): PlatformDriver {
  const view = (i: FakeInstance): FakeInstanceView => {
    const live = ["PENDING", "CREATING", "RUNNING"].includes(i.status);
    return {
      id: i.instanceId,
      live,
      labels: Object.fromEntries(i.labels.map((l) => [l.name, l.value])),
      // DestroyInstance records its reason. The fake does not tell an application that ended from a
      // passed deadline; the suite keeps Namespace's clock short of every deadline, so this is "exit".
      ended: live ? undefined : i.destroyReason !== undefined ? "destroy" : i.status === "DESTROYED" ? "exit" : "other",
    };
  };
  return {
    platform: "macos",
    label: PLATFORM_LABEL.macos,
    instances: () => [...compute.instances.values()].map(view),
    instance(id) {
      const i = compute.instances.get(id);
      return i ? view(i) : undefined;
    },
    launches: () => compute.calls("CreateInstance").length,
    progress() {
      for (const i of compute.instances.values()) if (i.status === "CREATING") compute.setStatus(i.instanceId, "RUNNING");
    },
    deliveredToken(runnerName) {
      // The JOB application's environment carries the runner token.
      const inst = [...compute.instances.values()].find((i) => i.labels.some((l) => l.name === LABEL_RUNNER && l.value === runnerName));
      const apps = (inst?.request.applications ?? []) as { environment?: Record<string, string> }[];
      const token = apps[0]?.environment?.FORGEJO_RUNNER_TOKEN;
      if (!token) throw new Error(`no CreateInstance for ${runnerName} carried FORGEJO_RUNNER_TOKEN`);
      return token;
    },
    jobEnded(instanceId) {
      // The JOB application exits with forgejo-runner; the instance goes DESTROYED.
      compute.finish(instanceId);
    },
    async addInstance(labels) {
      return compute.addInstance({ labels: Object.entries(labels).map(([name, value]) => ({ name, value })) }).instanceId;
    },
  };
}

/** Our labels for an instance of `runner` on `platform`. */
export function ourLabels(platform: Platform, runner: string, owner = DISPATCHER_ID): Record<string, string> {
  return { [LABEL_OWNER]: owner, [LABEL_RUNNER]: runner, [LABEL_PLATFORM]: platform };
}
