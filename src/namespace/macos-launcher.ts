import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import type { Logger } from "../http/logger.js";
import { buildBashBootstrap, buildDetachedBashLauncher, publicCredentials } from "../runner/bootstrap-bash.js";
import { assertEnvKey } from "../runner/env-key.js";
import { runnerSourceFor } from "../runner/runner-source.js";
import { errorMessage } from "../shared/error-message.js";
import { cacheVolume } from "./cache-volume.js";
import type { CacheVolume } from "./cache-volume.js";
import { ComputeApiError } from "./compute-api.js";
import type { ComputeApi } from "./compute-api.js";
import { awaitRunning } from "./compute-launch.js";
import type { CreateInstanceRequest, DescribeInstanceResponse, InstanceMetadata, VolumeRequest } from "./compute-types.js";
import { computeLaunchErrorKind, nscCreateFailure } from "./launch-errors.js";
import { startLaunch } from "./launch-start.js";
import { LABEL_PLATFORM, LaunchError } from "./launcher.js";
import type { InstanceInfo, LaunchResult, LaunchSpec, Launcher } from "./launcher.js";
import { destroyLeftBehind, destroyOrWarn } from "./left-behind.js";
import { MacosConfigError, macosImage, parseMacosShape, parseSizeMb, selectorsFlag, shapeRequest } from "./macos-shape.js";
import type { MacosImage, MacosShape } from "./macos-shape.js";
import type { NscCli } from "./nsc-cli.js";
import { NscError } from "./nsc-errors.js";
import { runnerEnvironment } from "./runner-env.js";

/** The parts of NscCli the macOS fallback uses. */
export type MacosFallbackNsc = Pick<NscCli, "create" | "ssh" | "list" | "destroy">;

export interface MacosLauncherOptions {
  config: Pick<DispatcherConfig, "namespace" | "runner">;
  api: ComputeApi;
  /** Required for the `nsc create` fallback (namespace.macos_fallback_nsc). */
  nsc?: MacosFallbackNsc | undefined;
  logger: Logger;
  now?: () => Date;
  /** How often launch looks at a new instance until it runs (default 3 s). */
  pollIntervalMs?: number;
}

/** macOS has no Docker: labels without an executor run on the host, whatever runner.executor says. */
const MACOS_EXECUTOR = "host";
function toInfo(m: InstanceMetadata): InstanceInfo {
  const labels: Record<string, string> = {};
  for (const l of m.labels) labels[l.name] = l.value;
  return { instanceId: m.instanceId, labels, createdAt: m.createdAt };
}

/**
 * macOS runners through the Namespace Compute API (docs/upstream-contracts.md#namespace-compute-api): CreateInstance with a
 * macOS shape, base image selectors, our labels, a deadline from the TTL and the bash bootstrap as
 * a JOB application (the instance ends when the job does). If the API cannot create the instance
 * for a reason other than auth or a bad request, `nsc create` + `nsc ssh` is the fallback.
 */
export class MacosLauncher implements Launcher {
  readonly platform = "macos" as const;
  private readonly ns: DispatcherConfig["namespace"];
  private readonly runner: DispatcherConfig["runner"];
  private readonly image: MacosImage;
  private readonly cacheSizeMb: number | undefined;
  private readonly now: () => Date;
  private readonly pollIntervalMs: number;

  constructor(private readonly opts: MacosLauncherOptions) {
    this.ns = opts.config.namespace;
    this.runner = opts.config.runner;
    this.now = opts.now ?? (() => new Date());
    this.pollIntervalMs = opts.pollIntervalMs ?? 3_000;
    // Configuration mistakes surface at start-up, not at the first macOS job.
    this.image = macosImage(this.ns.macos_base_image_id);
    parseMacosShape(this.ns.macos_machine_type, this.ns.macos_machine_arch);
    this.cacheSizeMb = this.ns.macos_cache_size ? parseSizeMb(this.ns.macos_cache_size) : undefined;
    if (this.ns.macos_cache_tag && !this.ns.macos_cache_path.startsWith("/")) {
      throw new MacosConfigError(`namespace.macos_cache_path must be an absolute path, got ${JSON.stringify(this.ns.macos_cache_path)}`);
    }
  }

  /**
   * When no region is configured, nsc (no region: the token's region, else eu) and the Compute API
   * (us) may look at different regions, so fallback instances are also looked for through nsc.
   */
  private get regionsMayDiffer(): boolean {
    return this.ns.macos_fallback_nsc && this.opts.nsc !== undefined && !this.ns.region && !this.ns.compute_base_url;
  }

  async launch(spec: LaunchSpec, signal?: AbortSignal): Promise<LaunchResult> {
    const { log, secret, prepared } = startLaunch(spec, "macos", this.opts.logger, () => this.prepare(spec));
    if (prepared.shape.rounded) {
      log.info({ requested: spec.machineType, shape: prepared.shape.machineType }, "machine type rounded up to the next macOS shape");
    }

    const req = this.createRequest(spec, prepared);
    log.info(
      { shape: prepared.shape.machineType, selectors: selectorsFlag(this.image), volumes: req.volumes?.map((v) => v.tag) ?? [] },
      "creating macOS instance via the Compute API",
    );
    let created: DescribeInstanceResponse;
    try {
      created = await this.opts.api.createInstance(req, signal);
    } catch (err) {
      if (!(err instanceof ComputeApiError)) throw err;
      const kind = computeLaunchErrorKind(err);
      if ((kind === "capacity" || kind === "transient") && this.ns.macos_fallback_nsc && this.opts.nsc && !signal?.aborted) {
        log.warn({ code: err.code }, `Compute API CreateInstance failed (${err.code}); falling back to nsc create`);
        await this.cleanUpAfterFailedCreate(spec, log);
        return this.launchWithNsc(spec, prepared, secret, log, signal);
      }
      throw new LaunchError(`creating macOS instance for runner ${spec.runnerName} failed: ${err.message}`, kind);
    }

    const instanceId = created.metadata.instanceId;
    log.info({ instance: instanceId, status: created.metadata.status }, "macOS instance created; waiting for it to run");
    await awaitRunning(instanceId, created, {
      api: this.opts.api,
      noun: "macOS instance",
      runnerName: spec.runnerName,
      waitTimeoutMs: this.ns.wait_timeout,
      pollIntervalMs: this.pollIntervalMs,
      timeoutAdvice: "raise it if macOS images take longer to boot",
      destroy: (id) => this.destroy(id),
      log,
      signal,
    });
    log.info({ instance: instanceId }, "macOS instance is running");
    return { instanceId };
  }

  async list(labels: Record<string, string>): Promise<InstanceInfo[]> {
    const filter = { ...labels, [LABEL_PLATFORM]: "macos" };
    const listed = (await this.opts.api.listInstances(filter)).map(toInfo);
    const matches = (i: InstanceInfo): boolean => Object.entries(filter).every(([k, v]) => i.labels[k] === v);
    const out = listed.filter(matches);
    if (this.regionsMayDiffer && this.opts.nsc) {
      const seen = new Set(out.map((i) => i.instanceId));
      for (const i of await this.opts.nsc.list(filter)) if (!seen.has(i.instanceId) && matches(i)) out.push(i);
    }
    return out;
  }

  async destroy(instanceId: string): Promise<void> {
    const { alreadyGone } = await this.opts.api.destroyInstance(instanceId, "forgejo-nsc: runner finished");
    // An instance the fallback made in nsc's region is unknown to the API's region.
    if (alreadyGone && this.regionsMayDiffer && this.opts.nsc) await this.opts.nsc.destroy(instanceId);
  }

  private prepare(spec: LaunchSpec): { shape: MacosShape; env: Record<string, string>; script: string; cache?: CacheVolume | undefined } {
    const shape = parseMacosShape(spec.machineType || this.ns.macos_machine_type, this.ns.macos_machine_arch);
    const cache = cacheVolume("macos_cache_tag", this.ns.macos_cache_tag, this.ns.macos_cache_path, spec.labels);
    const cachePath = cache?.path;
    const env = runnerEnvironment(spec, { base: this.ns.environment, executor: MACOS_EXECUTOR, cachePath });
    for (const k of Object.keys(env)) assertEnvKey(k);
    const script = buildBashBootstrap({
      runnerName: spec.runnerName,
      labels: spec.labels,
      executor: MACOS_EXECUTOR,
      mode: this.runner.mode,
      workdir: this.ns.workdir,
      credentials: publicCredentials(spec.credentials),
      jobHandle: spec.jobHandle,
      source: runnerSourceFor("macos", this.runner),
      cachePath,
    });
    return { shape, env, script, cache };
  }

  private createRequest(spec: LaunchSpec, p: ReturnType<MacosLauncher["prepare"]>): CreateInstanceRequest {
    const labels = { ...spec.instanceLabels, [LABEL_PLATFORM]: "macos" };
    const req: CreateInstanceRequest = {
      shape: shapeRequest(p.shape, this.image),
      documentedPurpose: `forgejo runner ${spec.runnerName}`,
      labels: Object.entries(labels).map(([name, value]) => ({ name, value })),
      deadline: new Date(this.now().getTime() + spec.ttlMs).toISOString(),
      applications: [{ name: "forgejo-runner", command: "/bin/bash", args: ["-lc", p.script], environment: p.env, workloadType: "JOB" }],
    };
    if (p.cache?.path) {
      const volume: VolumeRequest = { tag: p.cache.tag, mountPoint: p.cache.path, persistencyKind: "CACHE" };
      if (this.cacheSizeMb !== undefined) volume.sizeMb = String(this.cacheSizeMb);
      req.volumes = [volume];
    }
    if (this.image.baseImageId) req.experimental = { macosBaseImageId: this.image.baseImageId };
    return req;
  }

  /** A create that timed out may still have made an instance: find it by our labels and remove it. */
  private async cleanUpAfterFailedCreate(spec: LaunchSpec, log: Logger): Promise<void> {
    await destroyLeftBehind(spec, {
      list: async (labels) => (await this.opts.api.listInstances(labels)).map(toInfo),
      destroy: async (id) => void (await this.opts.api.destroyInstance(id, "forgejo-nsc: left behind by a failed create")),
      look: true,
      log,
    });
  }

  /**
   * The fallback: `nsc create` (macOS shape, selectors, --bare, our labels, cidfile and
   * --output_json_to, bounded by NscCli's outer timeout), then the bootstrap started detached
   * through `nsc ssh <id> -T -- /bin/bash` with the script on stdin.
   */
  private async launchWithNsc(
    spec: LaunchSpec,
    p: ReturnType<MacosLauncher["prepare"]>,
    secret: string,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<LaunchResult> {
    const nsc = this.opts.nsc!;
    const labels = { ...spec.instanceLabels, [LABEL_PLATFORM]: "macos" };
    const volumes = p.cache?.path ? [`cache:${p.cache.tag}:${p.cache.path}${this.cacheSizeMb ? `:${this.cacheSizeMb}mb` : ""}`] : [];
    let instanceId: string;
    try {
      ({ instanceId } = await nsc.create({
        machineType: p.shape.machineType,
        durationMs: spec.ttlMs,
        bare: true,
        selectors: this.image.selectors.map((s) => `${s.name}=${s.value}`),
        labels,
        purpose: `forgejo runner ${spec.runnerName}`,
        volumes,
        waitTimeoutMs: Math.max(this.ns.wait_timeout, 6 * 60_000),
        signal,
      }));
    } catch (err) {
      if (!(err instanceof NscError)) throw err;
      throw await nscCreateFailure(err, `macOS fallback (nsc create) for runner ${spec.runnerName}`, (id) => nsc.destroy(id), log);
    }
    log.info({ instance: instanceId }, "macOS instance created with nsc; starting the runner over nsc ssh");
    try {
      const payload = buildDetachedBashLauncher({ script: p.script, env: p.env, selfDestroy: { instanceId, region: this.ns.region } });
      await nsc.ssh(instanceId, ["/bin/bash"], { input: payload, secrets: [secret], timeoutMs: 120_000, signal });
    } catch (err) {
      await destroyOrWarn((id) => nsc.destroy(id), instanceId, log, "the fallback instance");
      throw new LaunchError(
        `starting the runner on macOS instance ${instanceId} over nsc ssh failed: ${errorMessage(err)}`,
        "transient",
        instanceId,
      );
    }
    log.info({ instance: instanceId }, "macOS runner started in the background (nsc fallback)");
    return { instanceId };
  }
}
