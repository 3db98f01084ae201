import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import type { Logger } from "../http/logger.js";
import { TOKEN_ENV, buildShBootstrap, publicCredentials } from "../runner/bootstrap-sh.js";
import { EnvError, assertEnvKey } from "../runner/env-key.js";
import { cacheVolume } from "./cache-volume.js";
import type { CacheVolume } from "./cache-volume.js";
import { ComputeApiError } from "./compute-api.js";
import type { ComputeApi } from "./compute-api.js";
import { awaitRunning } from "./compute-launch.js";
import type { ContainerRequest, CreateInstanceRequest, DescribeInstanceResponse } from "./compute-types.js";
import { splitEnv } from "./env-flags.js";
import { computeLaunchErrorKind, nscLaunchErrorKind } from "./launch-errors.js";
import { startLaunch } from "./launch-start.js";
import type { LaunchStart } from "./launch-start.js";
import { LABEL_PLATFORM, LaunchError } from "./launcher.js";
import type { InstanceInfo, LaunchResult, LaunchSpec, Launcher } from "./launcher.js";
import { destroyLeftBehind, withNotes } from "./left-behind.js";
import { LinuxConfigError, containerNetwork, linuxShape } from "./linux-compute.js";
import { parseSizeMb } from "./macos-shape.js";
import type { NscCli } from "./nsc-cli.js";
import { NscError, redact } from "./nsc-errors.js";
import { runnerEnvironment } from "./runner-env.js";

export interface LinuxLauncherOptions {
  config: Pick<DispatcherConfig, "namespace" | "runner">;
  nsc: NscCli;
  /** The Compute API client; required (and used) with namespace.linux_launch: compute_api. */
  api?: ComputeApi | undefined;
  logger: Logger;
  now?: () => Date;
  /** How often a Compute API launch looks at its new instance until it runs (default 1 s). */
  pollIntervalMs?: number;
}

/**
 * Linux runners as container instances: one container running the POSIX sh bootstrap, our labels
 * on the instance, the TTL as its deadline. Started with `nsc run`
 * (docs/upstream-contracts.md#nsc-run), or under namespace.linux_launch: compute_api with the
 * Compute API's CreateInstance (docs/upstream-contracts.md#namespace-compute-api), which keeps the
 * runner token off every command line. Either way supervision and destroy go through `nsc`: an
 * instance made through the API is the same workspace's instance with the same labels.
 */
export class LinuxLauncher implements Launcher {
  readonly platform = "linux" as const;
  readonly listSource = "nsc";
  private readonly ns: DispatcherConfig["namespace"];
  private readonly runner: DispatcherConfig["runner"];
  private readonly nsc: NscCli;
  private readonly api: ComputeApi | undefined;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly pollIntervalMs: number;

  constructor(opts: LinuxLauncherOptions) {
    this.ns = opts.config.namespace;
    this.runner = opts.config.runner;
    this.nsc = opts.nsc;
    this.logger = opts.logger;
    this.now = opts.now ?? (() => new Date());
    this.pollIntervalMs = opts.pollIntervalMs ?? 1_000;
    if (this.ns.linux_launch === "compute_api") {
      if (!opts.api)
        throw new LinuxConfigError(
          "namespace.linux_launch is compute_api, but no Compute API client was configured: set namespace.token_file",
        );
      // Configuration mistakes surface at start-up, not at the first Linux job.
      linuxShape(this.ns.machine_type);
      containerNetwork(this.ns.network);
      if (this.ns.linux_cache_size) parseSizeMb(this.ns.linux_cache_size);
      this.api = opts.api;
    }
  }

  async launch(spec: LaunchSpec, signal?: AbortSignal): Promise<LaunchResult> {
    const api = this.api;
    if (api)
      return this.launchWithApi(
        api,
        spec,
        startLaunch(spec, "linux", this.logger, () => this.createRequest(spec)),
        signal,
      );
    return this.launchWithNsc(
      spec,
      startLaunch(spec, "linux", this.logger, () => this.prepareNsc(spec)),
      signal,
    );
  }

  list(labels: Record<string, string>): Promise<InstanceInfo[]> {
    return this.nsc.list(labels);
  }

  destroy(instanceId: string): Promise<void> {
    return this.nsc.destroy(instanceId);
  }

  private async launchWithNsc(spec: LaunchSpec, start: LaunchStart<NscArgs>, signal?: AbortSignal): Promise<LaunchResult> {
    const { log, secret, prepared: args } = start;
    log.info(
      {
        image: spec.image,
        machineType: spec.machineType,
        ttlMs: spec.ttlMs,
        volumes: args.volumes,
        envViaFlags: args.flagKeys,
        envViaScript: args.scriptKeys,
      },
      "starting linux instance with nsc run",
    );
    try {
      const { instanceId } = await this.nsc.run({
        image: spec.image,
        name: spec.runnerName,
        machineType: spec.machineType,
        durationMs: spec.ttlMs,
        waitTimeoutMs: this.ns.wait_timeout,
        user: this.ns.user,
        network: this.ns.network,
        volumes: args.volumes,
        env: args.flagEnv,
        labels: spec.instanceLabels,
        command: ["/bin/sh", "-c", args.script],
        secrets: [secret],
        signal,
      });
      log.info({ instance: instanceId }, "linux instance is ready");
      return { instanceId };
    } catch (err) {
      if (!(err instanceof NscError)) throw err;
      throw await this.failed(spec, err, log);
    }
  }

  /**
   * CreateInstance with one JOB container (the instance ends with it), the whole runner environment
   * in the request body, then DescribeInstance until it runs. The container runs as the image's
   * user: the public ContainerRequest has no user override.
   */
  private async launchWithApi(
    api: ComputeApi,
    spec: LaunchSpec,
    start: LaunchStart<ApiRequest>,
    signal?: AbortSignal,
  ): Promise<LaunchResult> {
    const {
      log,
      secret,
      prepared: { req, container },
    } = start;
    // What a server echoing the request could leak: the token and the operator's and requester's values.
    const secrets = [secret, ...Object.values(this.ns.environment), ...Object.values(spec.env)];
    log.info(
      {
        image: spec.image,
        machineType: spec.machineType,
        ttlMs: spec.ttlMs,
        volumes: container.volumes?.map((v) => v.tag) ?? [],
        envKeys: Object.keys(container.environment).sort(),
      },
      "creating linux instance via the Compute API",
    );
    let created: DescribeInstanceResponse;
    try {
      created = await api.createInstance(req, signal);
    } catch (err) {
      if (!(err instanceof ComputeApiError)) throw err;
      const kind = computeLaunchErrorKind(err);
      // Only a call that may have reached the server (a timeout, an unavailable answer) can have made one.
      const { notes } = await this.destroyLeftovers(spec, [], log, kind === "transient");
      const message = `creating linux instance for runner ${spec.runnerName} failed: ${redact(err.message, secrets)}${withNotes(notes)}`;
      log.warn({ kind, code: err.code }, message);
      throw new LaunchError(message, kind);
    }
    const instanceId = created.metadata.instanceId;
    log.info({ instance: instanceId, status: created.metadata.status }, "linux instance created; waiting for it to run");
    try {
      await awaitRunning(instanceId, created, {
        api,
        noun: "Linux instance",
        runnerName: spec.runnerName,
        waitTimeoutMs: this.ns.wait_timeout,
        pollIntervalMs: this.pollIntervalMs,
        timeoutAdvice: "raise it if the image takes longer to pull",
        // The API that made it removes it (not nsc, which may not list it yet), even after a cancel.
        destroy: async (id) => void (await api.destroyInstance(id, "forgejo-nsc: did not start")),
        log,
        signal,
      });
    } catch (err) {
      if (err instanceof LaunchError) throw new LaunchError(redact(err.message, secrets), err.kind, err.instanceId);
      throw err;
    }
    log.info({ instance: instanceId }, "linux instance is running");
    return { instanceId };
  }

  private createRequest(spec: LaunchSpec): ApiRequest {
    const cache = this.cacheVolume(spec);
    const cachePath = cache?.path;
    const environment = runnerEnvironment(spec, { base: this.ns.environment, executor: this.runner.executor, cachePath });
    for (const [key, value] of Object.entries(environment)) {
      assertEnvKey(key);
      if (value.includes("\0"))
        throw new EnvError(`environment variable ${key} contains a NUL byte, which no process environment can carry`);
    }
    // Every value travels in the request body, so none has to be written into the script.
    const script = this.script(spec, {}, cachePath);
    const container: ContainerRequest = {
      name: spec.runnerName,
      imageRef: spec.image,
      args: ["/bin/sh", "-c", script],
      environment,
      workloadType: "JOB",
    };
    const network = containerNetwork(this.ns.network);
    if (network) container.network = network;
    if (cache?.path) {
      container.volumes = [{ tag: cache.tag, mountPoint: cache.path, persistencyKind: "CACHE" }];
      if (this.ns.linux_cache_size) container.volumes[0]!.sizeMb = String(parseSizeMb(this.ns.linux_cache_size));
    }
    const labels = { ...spec.instanceLabels, [LABEL_PLATFORM]: "linux" };
    const req: CreateInstanceRequest = {
      shape: linuxShape(spec.machineType || this.ns.machine_type),
      documentedPurpose: `forgejo runner ${spec.runnerName}`,
      labels: Object.entries(labels).map(([name, value]) => ({ name, value })),
      deadline: new Date(this.now().getTime() + spec.ttlMs).toISOString(),
      containers: [container],
    };
    return { req, container };
  }

  private prepareNsc(spec: LaunchSpec): NscArgs {
    const cache = this.cacheVolume(spec);
    const cachePath = cache?.path;
    const env = runnerEnvironment(spec, { base: this.ns.environment, executor: this.runner.executor, cachePath });

    const split = splitEnv(env, { flagOnly: [TOKEN_ENV] });
    const flagEnv: Record<string, string> = {};
    for (let i = 1; i < split.flags.length; i += 2) {
      const kv = split.flags[i] as string;
      const at = kv.indexOf("=");
      flagEnv[kv.slice(0, at)] = kv.slice(at + 1);
    }
    const script = this.script(spec, split.viaScript, cachePath);
    const volumes: string[] = [];
    if (cache && cachePath) {
      if (cachePath.includes(":") || /[,"]/.test(cachePath))
        throw new Error(`namespace.linux_cache_path ${JSON.stringify(cachePath)} must not contain ":", "," or '"'`);
      const size = this.ns.linux_cache_size;
      if (size !== undefined && !/^\d+(\.\d+)? ?[kKmMgGtTpP]?[iI]?[bB]?$/.test(size)) {
        throw new Error(`namespace.linux_cache_size ${JSON.stringify(size)} is not a size such as 50gb or 512mb`);
      }
      volumes.push(`cache:${cache.tag}:${cachePath}${size ? `:${size}` : ""}`);
    }
    return { script, volumes, flagEnv, flagKeys: Object.keys(flagEnv).sort(), scriptKeys: Object.keys(split.viaScript).sort() };
  }

  private script(spec: LaunchSpec, scriptEnv: Record<string, string>, cachePath: string | undefined): string {
    return buildShBootstrap({
      runnerName: spec.runnerName,
      labels: spec.labels,
      executor: this.runner.executor,
      mode: this.runner.mode,
      workdir: this.ns.workdir,
      credentials: publicCredentials(spec.credentials),
      jobHandle: spec.jobHandle,
      scriptEnv,
      cachePath,
      installNode: this.runner.install_node,
    });
  }

  /** The cache volume for this runner's labels, if a cache is configured. */
  private cacheVolume(spec: LaunchSpec): CacheVolume | undefined {
    return cacheVolume("linux_cache_tag", this.ns.linux_cache_tag, this.ns.linux_cache_path, spec.labels);
  }

  /** Destroys whatever a failed `nsc run` left behind, then says what happened and what to do. */
  private async failed(spec: LaunchSpec, err: NscError, log: Logger): Promise<LaunchError> {
    const kind = nscLaunchErrorKind(err);
    // A capacity, auth or flag error means no instance was created; anything else may have one.
    const { notes, first } = await this.destroyLeftovers(spec, err.instanceId ? [err.instanceId] : [], log, kind === "transient");
    const message = `starting runner ${spec.runnerName} failed: ${err.message}${withNotes(notes)}`;
    log.warn({ kind, instance: err.instanceId }, message);
    return new LaunchError(message, kind, err.instanceId ?? first);
  }

  /** The known instances and (when `look`) any `nsc list` shows with this runner's labels, destroyed. */
  private destroyLeftovers(
    spec: LaunchSpec,
    known: readonly string[],
    log: Logger,
    look: boolean,
  ): Promise<{ notes: string[]; first?: string | undefined }> {
    return destroyLeftBehind(spec, { list: (labels) => this.nsc.list(labels), destroy: (id) => this.nsc.destroy(id), known, look, log });
  }
}

interface NscArgs {
  script: string;
  volumes: string[];
  flagEnv: Record<string, string>;
  flagKeys: string[];
  scriptKeys: string[];
}

interface ApiRequest {
  req: CreateInstanceRequest;
  container: ContainerRequest;
}
