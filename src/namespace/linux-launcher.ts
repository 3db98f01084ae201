import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import type { Logger } from "../http/logger.js";
import { TOKEN_ENV, buildShBootstrap, publicCredentials } from "../runner/bootstrap-sh.js";
import { cacheTag } from "../runner/labels.js";
import { credentialSecret, runnerEnvironment } from "./runner-env.js";
import { splitEnv } from "./env-flags.js";
import { LABEL_OWNER, LABEL_RUNNER, LaunchError } from "./launcher.js";
import type { InstanceInfo, LaunchResult, LaunchSpec, Launcher } from "./launcher.js";
import type { NscCli } from "./nsc-cli.js";
import { NscError } from "./nsc-errors.js";

export interface LinuxLauncherOptions {
  config: Pick<DispatcherConfig, "namespace" | "runner">;
  nsc: NscCli;
  logger: Logger;
}

/**
 * Linux runners as `nsc run` container instances (docs/upstream-contracts.md#nsc-run): one container running the
 * POSIX sh bootstrap, our labels on the instance, the TTL as --duration. nsc run returns once the
 * instance is ready; supervision finds the end of the job by listing.
 */
export class LinuxLauncher implements Launcher {
  readonly platform = "linux" as const;
  readonly listSource = "nsc";
  private readonly ns: DispatcherConfig["namespace"];
  private readonly runner: DispatcherConfig["runner"];
  private readonly nsc: NscCli;
  private readonly logger: Logger;

  constructor(opts: LinuxLauncherOptions) {
    this.ns = opts.config.namespace;
    this.runner = opts.config.runner;
    this.nsc = opts.nsc;
    this.logger = opts.logger;
  }

  async launch(spec: LaunchSpec, signal?: AbortSignal): Promise<LaunchResult> {
    const log = this.logger.child({ runner: spec.runnerName });
    if (spec.platform !== "linux") throw new LaunchError(`runner ${spec.runnerName} is for ${spec.platform}, not linux`, "invalid");
    const secret = credentialSecret(spec.credentials);
    const cachePath = this.ns.linux_cache_tag ? this.ns.linux_cache_path : undefined;

    let args: ReturnType<LinuxLauncher["prepare"]>;
    try {
      args = this.prepare(spec, secret, cachePath);
    } catch (err) {
      // LabelError, EnvError, NscError (unsafe label values) and config problems: none will pass on retry.
      if (err instanceof Error) {
        throw new LaunchError(`cannot launch runner ${spec.runnerName}: ${err.message}`, "invalid");
      }
      throw err;
    }

    log.info(
      { image: spec.image, machineType: spec.machineType, ttlMs: spec.ttlMs, volumes: args.volumes, envViaFlags: args.flagKeys, envViaScript: args.scriptKeys },
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

  list(labels: Record<string, string>): Promise<InstanceInfo[]> {
    return this.nsc.list(labels);
  }

  destroy(instanceId: string): Promise<void> {
    return this.nsc.destroy(instanceId);
  }

  private prepare(spec: LaunchSpec, secret: string, cachePath: string | undefined) {
    const env = runnerEnvironment(spec, { base: this.ns.environment, executor: this.runner.executor, cachePath });

    const split = splitEnv(env, { flagOnly: [TOKEN_ENV] });
    const flagEnv: Record<string, string> = {};
    for (let i = 1; i < split.flags.length; i += 2) {
      const kv = split.flags[i] as string;
      const at = kv.indexOf("=");
      flagEnv[kv.slice(0, at)] = kv.slice(at + 1);
    }
    const script = buildShBootstrap({
      runnerName: spec.runnerName,
      labels: spec.labels,
      executor: this.runner.executor,
      mode: this.runner.mode,
      workdir: this.ns.workdir,
      credentials: publicCredentials(spec.credentials),
      jobHandle: spec.jobHandle,
      scriptEnv: split.viaScript,
      cachePath,
      installNode: this.runner.install_node,
    });
    const volumes: string[] = [];
    if (this.ns.linux_cache_tag && cachePath) {
      const tag = cacheTag(this.ns.linux_cache_tag, spec.labels);
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(tag)) {
        throw new Error(`namespace.linux_cache_tag expands to ${JSON.stringify(tag)}: use letters, digits, ".", "_" and "-" (and {labels})`);
      }
      if (cachePath.includes(":") || /[,"]/.test(cachePath)) throw new Error(`namespace.linux_cache_path ${JSON.stringify(cachePath)} must not contain ":", "," or '"'`);
      const size = this.ns.linux_cache_size;
      if (size !== undefined && !/^\d+(\.\d+)? ?[kKmMgGtTpP]?[iI]?[bB]?$/.test(size)) {
        throw new Error(`namespace.linux_cache_size ${JSON.stringify(size)} is not a size such as 50gb or 512mb`);
      }
      volumes.push(`cache:${tag}:${cachePath}${size ? `:${size}` : ""}`);
    }
    return { script, volumes, flagEnv, flagKeys: Object.keys(flagEnv).sort(), scriptKeys: Object.keys(split.viaScript).sort() };
  }

  /** Destroys whatever a failed `nsc run` left behind, then says what happened and what to do. */
  private async failed(spec: LaunchSpec, err: NscError, log: Logger): Promise<LaunchError> {
    const leftovers = new Set<string>();
    if (err.instanceId) leftovers.add(err.instanceId);
    // A capacity, auth or flag error means no instance was created; anything else may have one.
    const mayHaveInstance = err.kind !== "capacity" && err.kind !== "auth" && err.kind !== "invalid";
    const notes: string[] = [];
    if (mayHaveInstance) {
      const filter: Record<string, string> = { [LABEL_RUNNER]: spec.instanceLabels[LABEL_RUNNER] ?? spec.runnerName };
      const owner = spec.instanceLabels[LABEL_OWNER];
      if (owner) filter[LABEL_OWNER] = owner;
      try {
        for (const i of await this.nsc.list(filter)) leftovers.add(i.instanceId);
      } catch (listErr) {
        notes.push("could not list instances to look for one left behind; the orphan sweep will find it");
        log.warn({ err: listErr instanceof Error ? listErr.message : String(listErr) }, "looking for a left-behind instance failed");
      }
    }
    for (const id of leftovers) {
      try {
        await this.nsc.destroy(id);
        notes.push(`destroyed instance ${id} it left behind`);
        log.info({ instance: id }, "destroyed an instance left behind by a failed nsc run");
      } catch (destroyErr) {
        notes.push(`could not destroy instance ${id} it left behind; the orphan sweep retries`);
        log.warn({ instance: id, err: destroyErr instanceof Error ? destroyErr.message : String(destroyErr) }, "destroying a left-behind instance failed");
      }
    }
    const kind: LaunchError["kind"] = err.kind === "capacity" || err.kind === "auth" || err.kind === "invalid" ? err.kind : "transient";
    const message = `starting runner ${spec.runnerName} failed: ${err.message}${notes.length ? ` (${notes.join("; ")})` : ""}`;
    log.warn({ kind, instance: err.instanceId }, message);
    return new LaunchError(message, kind, err.instanceId ?? [...leftovers][0]);
  }
}
