import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import type { Logger } from "../http/logger.js";
import type { Metrics } from "../http/metrics.js";
import { publicCredentials } from "../runner/bootstrap-sh.js";
import { buildPs1Bootstrap, buildPs1Launcher, buildPs1Prelude, chunkCommands, payloadFileName } from "../runner/bootstrap-ps1.js";
import { assertEnvKey } from "../runner/env-key.js";
import { runnerSourceFor } from "../runner/runner-source.js";
import { errorMessage } from "../shared/error-message.js";
import { nscCreateFailure } from "./launch-errors.js";
import { startLaunch } from "./launch-start.js";
import { LABEL_PLATFORM, LaunchError } from "./launcher.js";
import type { InstanceInfo, LaunchResult, LaunchSpec, Launcher } from "./launcher.js";
import { destroyOrWarn } from "./left-behind.js";
import { runnerEnvironment } from "./runner-env.js";
import type { NscCli, NscInstanceRecord, NscTunnel } from "./nsc-cli.js";
import { NscError, redact } from "./nsc-errors.js";
import { windowsShapeForLabels } from "./platform.js";
import { WinRmClient, encodePowerShell, openShellWithRetry } from "./winrm/client.js";
import { WinRmError } from "./winrm/errors.js";
import { xmlEscape } from "./winrm/soap.js";

export const WINRM_PORT = 5985;
/** Windows has no Docker here: labels without an executor run on the host. */
const WINDOWS_EXECUTOR = "host";

export type WindowsNsc = Pick<NscCli, "create" | "portForward" | "list" | "destroy">;

export interface WindowsLauncherOptions {
  config: Pick<DispatcherConfig, "namespace" | "runner">;
  nsc: WindowsNsc;
  logger: Logger;
  metrics?: Metrics | undefined;
  /** How long WinRM may take to answer after boot (default: namespace.wait_timeout). */
  winrmTimeoutMs?: number;
  /** Pause between WinRM connection attempts (default 3 s). */
  winrmRetryIntervalMs?: number;
}

/**
 * `windows/amd64:CPUxMEM` from an explicit machine type (with or without the prefix) or, when
 * none is given, from the profile label's size (small 2x4, medium 4x8, large 8x16; default 8x16).
 */
export function windowsMachineType(requested: string | undefined, labels: readonly string[]): string {
  const text = (requested ?? "").trim() || windowsShapeForLabels(labels);
  const m = /^(?:windows\/amd64:)?(\d+)x(\d+)$/i.exec(text);
  if (!m || Number(m[1]) <= 0 || Number(m[2]) <= 0) {
    throw new Error(`machine type ${JSON.stringify(requested)} is not a Windows shape: use CPUxMEM (GB) such as 4x8 or windows/amd64:8x16`);
  }
  return `windows/amd64:${m[1]}x${m[2]}`;
}

/** WinRM credentials from the `--output_json_to` record: the winrm service's, else rdp's (the same account). */
export function windowsCredentials(record: NscInstanceRecord): { username: string; password: string } | undefined {
  const services = record.service_state ?? [];
  for (const name of ["winrm", "rdp"]) {
    const c = services.find((s) => s.name === name)?.credentials;
    if (c?.username && c.password) return { username: c.username, password: c.password };
  }
  return undefined;
}

/**
 * Windows runners: `nsc create` with a Windows shape, the WinRM/RDP credentials from the instance
 * record, a tunnel to WinRM through `nsc instance port-forward`, and the PowerShell bootstrap
 * started over WinRM as a scheduled task, after which the tunnel and WinRM connection are closed:
 * no local process stays alive per runner. Supervision lists instances; the script shuts the
 * machine down when the job is done.
 */
export class WindowsLauncher implements Launcher {
  readonly platform = "windows" as const;
  readonly listSource = "nsc";
  private readonly ns: DispatcherConfig["namespace"];
  private readonly runner: DispatcherConfig["runner"];

  constructor(private readonly opts: WindowsLauncherOptions) {
    this.ns = opts.config.namespace;
    this.runner = opts.config.runner;
    if (this.ns.windows_machine_type) windowsMachineType(this.ns.windows_machine_type, []);
  }

  async launch(spec: LaunchSpec, signal?: AbortSignal): Promise<LaunchResult> {
    const { log, secret, prepared: p } = startLaunch(spec, "windows", this.opts.logger, () => this.prepare(spec));

    log.info({ machineType: p.machineType, ttlMs: spec.ttlMs }, "creating Windows instance with nsc create");
    let instanceId: string;
    let record: NscInstanceRecord;
    try {
      ({ instanceId, record } = await this.opts.nsc.create({
        machineType: p.machineType,
        durationMs: spec.ttlMs,
        labels: { ...spec.instanceLabels, [LABEL_PLATFORM]: "windows" },
        purpose: `forgejo runner ${spec.runnerName}`,
        waitTimeoutMs: Math.max(this.ns.wait_timeout, 6 * 60_000),
        signal,
      }));
    } catch (err) {
      if (!(err instanceof NscError)) throw err;
      throw await nscCreateFailure(err, `creating Windows instance for runner ${spec.runnerName}`, (id) => this.destroy(id), log);
    }
    log.info({ instance: instanceId }, "Windows instance is ready; starting the runner over WinRM");

    try {
      const creds = windowsCredentials(record);
      if (!creds) {
        throw new LaunchError(
          `Windows instance ${instanceId} reported no rdp or winrm credentials in its service_state, so WinRM cannot be reached; check that the Windows image exposes RDP/WinRM`,
          "transient",
          instanceId,
        );
      }
      await this.startOverWinRm(instanceId, creds, p, [secret, creds.password], log, signal);
    } catch (err) {
      await destroyOrWarn((id) => this.destroy(id), instanceId, log, "the Windows instance");
      if (err instanceof LaunchError) throw err;
      // nsc's auth failing is ours to fix; WinRM refusing the instance's own account right after boot is not.
      const kind = err instanceof NscError && err.kind === "auth" ? "auth" : "transient";
      throw new LaunchError(
        `starting the runner on Windows instance ${instanceId} failed: ${errorMessage(err)}; the instance was destroyed`,
        kind,
        instanceId,
      );
    }
    log.info({ instance: instanceId }, "Windows runner task started; WinRM and the tunnel are closed");
    return { instanceId };
  }

  list(labels: Record<string, string>): Promise<InstanceInfo[]> {
    return this.opts.nsc.list({ ...labels, [LABEL_PLATFORM]: "windows" });
  }

  destroy(instanceId: string): Promise<void> {
    return this.opts.nsc.destroy(instanceId);
  }

  private prepare(spec: LaunchSpec) {
    const source = runnerSourceFor("windows", this.runner);
    if (source.kind !== "download")
      throw new Error(source.kind === "none" ? source.problem : "Windows runners need runner.binaries.windows_amd64");
    const download = { url: source.url, sha256: source.sha256 };
    const machineType = windowsMachineType(spec.machineType, spec.labels);
    const env = runnerEnvironment(spec, { base: this.ns.environment, executor: WINDOWS_EXECUTOR });
    for (const [k, v] of Object.entries(env)) {
      assertEnvKey(k);
      try {
        xmlEscape(v);
      } catch {
        throw new Error(`environment value of ${k} contains control characters that WinRM cannot carry`);
      }
    }
    const envNames = Object.keys(env).sort();
    // Built now so bad labels or names fail before an instance exists; rebuilt with the instance ID.
    const launcher = (instanceId?: string): string =>
      buildPs1Launcher({
        runnerName: spec.runnerName,
        bootstrap: buildPs1Bootstrap({
          runnerName: spec.runnerName,
          labels: spec.labels,
          executor: WINDOWS_EXECUTOR,
          mode: this.runner.mode,
          credentials: publicCredentials(spec.credentials),
          jobHandle: spec.jobHandle,
          download,
          envNames,
          selfDestroy: instanceId ? { instanceId, region: this.ns.region } : undefined,
        }),
        envNames,
        ttlMs: spec.ttlMs,
      });
    launcher();
    const file = payloadFileName(spec.runnerName);
    return { machineType, env, launcher, file };
  }

  private async startOverWinRm(
    instanceId: string,
    creds: { username: string; password: string },
    p: ReturnType<WindowsLauncher["prepare"]>,
    secrets: string[],
    log: Logger,
    signal?: AbortSignal,
  ): Promise<void> {
    let tunnel: NscTunnel;
    try {
      tunnel = await this.opts.nsc.portForward(instanceId, WINRM_PORT);
    } catch (err) {
      throw new LaunchError(
        `opening the WinRM tunnel (nsc instance port-forward ${instanceId} --target_port ${WINRM_PORT}) failed: ${errorMessage(err)}`,
        "transient",
        instanceId,
      );
    }
    const client = new WinRmClient({
      endpoint: `${tunnel.host}:${tunnel.port}`,
      username: creds.username,
      password: creds.password,
      logger: log,
      metrics: this.opts.metrics,
    });
    try {
      const deadlineMs = Date.now() + (this.opts.winrmTimeoutMs ?? this.ns.wait_timeout);
      const shell = await openShellWithRetry(client, p.env, {
        deadlineMs,
        intervalMs: this.opts.winrmRetryIntervalMs,
        logger: log,
        signal,
      });
      try {
        for (const cmd of chunkCommands(p.launcher(instanceId), p.file)) {
          const r = await client.run(shell, cmd);
          if (r.exitCode !== 0)
            throw new WinRmError(
              "command",
              `writing the runner script failed (exit ${r.exitCode}): ${redact(r.stderr.trim(), secrets).slice(0, 300)}`,
            );
        }
        const r = await client.run(shell, "powershell.exe", [
          "-NoProfile",
          "-NonInteractive",
          "-ExecutionPolicy",
          "Bypass",
          "-EncodedCommand",
          encodePowerShell(buildPs1Prelude(p.file)),
        ]);
        if (r.exitCode !== 0) {
          throw new WinRmError(
            "command",
            `the PowerShell launcher failed (exit ${r.exitCode}): ${redact(cleanStderr(r.stderr), secrets).slice(0, 500)}`,
          );
        }
        log.info({ output: redact(r.stdout.trim(), secrets).slice(0, 200) }, "PowerShell launcher finished");
      } finally {
        await client.deleteShell(shell).catch(() => undefined);
      }
    } finally {
      await client.close();
      await tunnel.close();
    }
  }
}

/** PowerShell writes errors to stderr as CLIXML when not interactive; keep the readable text. */
function cleanStderr(stderr: string): string {
  if (!stderr.includes("#< CLIXML")) return stderr.trim();
  const texts = [...stderr.matchAll(/<S S="Error">([^<]*)<\/S>/g)].map((m) => m[1]!.replace(/_x000D__x000A_/g, " ").trim());
  return (texts.join(" ") || stderr).trim();
}
