import type { Logger } from "pino";
import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import { ForgejoClient } from "../forgejo/client.js";
import { Metrics } from "../http/metrics.js";
import { runnerSourceProblem } from "../runner/runner-source.js";
import { ComputeApi, computeBaseUrl } from "../namespace/compute-api.js";
import type { Launcher } from "../namespace/launcher.js";
import { LinuxLauncher } from "../namespace/linux-launcher.js";
import { MacosLauncher } from "../namespace/macos-launcher.js";
import { NscCli } from "../namespace/nsc-cli.js";
import { WindowsLauncher } from "../namespace/windows-launcher.js";
import type { Lease } from "../ha/lease.js";
import { openLease } from "../ha/open-lease.js";
import { openStore, postgresOptions } from "../store/open-store.js";
import { postgresTarget } from "../store/postgres/postgres-config.js";
import type { Platform } from "../store/types.js";
import type { Clock } from "../shared/clock.js";
import type { DispatcherDeps } from "./app.js";

/** Knobs of the real dependencies that only tests turn (the daemon uses the defaults). */
export interface DispatcherWiringOptions {
  /** The clock of the dispatcher and of the macOS launcher's deadlines. */
  now?: Clock;
  /** Extra environment for every nsc call (a fake nsc's state directory). */
  nscEnv?: Record<string, string>;
  /** Pause between DescribeInstance polls while a macOS instance boots (3 s). */
  macosPollIntervalMs?: number;
  /** Pause between attempts to open the WinRM shell of a booting Windows machine. */
  winrmRetryIntervalMs?: number;
}

/** Builds the real clients, launchers and store from a validated config. */
export async function buildDispatcherDeps(
  config: DispatcherConfig,
  logger: Logger,
  opts: DispatcherWiringOptions = {},
): Promise<DispatcherDeps> {
  const metrics = new Metrics({ daemon: "dispatcher" });
  const forgejo = new ForgejoClient({
    baseUrl: config.forgejo.base_url,
    token: config.forgejo.token ?? "",
    timeoutMs: config.forgejo.timeout,
    extraHeaders: config.forgejo.extra_headers,
    logger: logger.child({ component: "forgejo" }),
    metrics,
  });
  const nsc = new NscCli({
    binary: config.namespace.nsc_binary,
    region: config.namespace.region,
    tokenFile: config.namespace.token_file,
    logger: logger.child({ component: "nsc" }),
    metrics,
    env: opts.nscEnv,
  });
  const api = config.namespace.token_file
    ? new ComputeApi({ baseUrl: computeBaseUrl(config.namespace), tokenFile: config.namespace.token_file, logger, metrics })
    : undefined;
  const linuxApi = config.namespace.linux_launch === "compute_api" ? api : undefined;
  const launchers: Partial<Record<Platform, Launcher>> = {
    linux: new LinuxLauncher({ config, nsc, api: linuxApi, logger: logger.child({ component: "linux" }) }),
    windows: new WindowsLauncher({
      config,
      nsc,
      metrics,
      logger: logger.child({ component: "windows" }),
      winrmRetryIntervalMs: opts.winrmRetryIntervalMs,
    }),
  };
  if (linuxApi) {
    logger.info(
      "Linux runners are created through the Compute API (namespace.linux_launch: compute_api): containers run as the image's user; namespace.user is not applied",
    );
  }
  if (api) {
    launchers.macos = new MacosLauncher({
      config,
      api,
      nsc: config.namespace.macos_fallback_nsc ? nsc : undefined,
      logger: logger.child({ component: "macos" }),
      now: opts.now,
      pollIntervalMs: opts.macosPollIntervalMs,
    });
  } else {
    logger.info("namespace.token_file is not set: macOS runners (Compute API) are disabled");
  }
  for (const platform of ["windows", "macos"] as const) {
    const problem = runnerSourceProblem(platform, config.runner);
    if (problem) logger.info(`${platform} runners are refused: ${problem}`);
  }
  const store = await openStore(config.dispatcher, { logger });
  const lease = await openDispatcherLease(config, logger).catch(async (err: unknown) => {
    await store.close();
    throw err;
  });
  return { config, logger, store, forgejo, launchers, metrics, now: opts.now, lease };
}

/**
 * With dispatcher.store (PostgreSQL, replicas): the lease that says which replica acts, on its own
 * connection to the store's database and schema. With SQLite: the single replica's lease.
 */
function openDispatcherLease(config: DispatcherConfig, logger: Logger): Promise<Lease> {
  const d = config.dispatcher;
  const target = d.store === undefined ? undefined : postgresTarget(d.store, postgresOptions(d.postgres));
  return openLease({
    postgres: target && { connection: { ...target.pool, application_name: "forgejo-nsc lease" }, schema: target.schema },
    name: "dispatcher",
    ttlMs: d.lease_ttl ?? d.supervise_interval,
    logger,
    replica: d.replica_name,
  });
}
