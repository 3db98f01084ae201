import { accessSync, constants as fsConstants } from "node:fs";
import { delimiter, join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import { tokenFileProblem } from "../config/token-file.js";
import type { ForgejoApi } from "../forgejo/types.js";
import { gateForgejo, gateLaunchers } from "../ha/gate.js";
import type { Lease } from "../ha/lease.js";
import { SoleLease } from "../ha/lease.js";
import { registerLeaseMetrics } from "../ha/lease-metrics.js";
import { bearerAuth } from "../http/auth.js";
import { registerHealth } from "../http/health.js";
import type { ReadinessCheck } from "../http/health.js";
import { Metrics } from "../http/metrics.js";
import { rateLimit } from "../http/rate-limit.js";
import { unsafeListenProblem } from "../http/listen-safety.js";
import { createServer } from "../http/server.js";
import type { Launcher } from "../namespace/launcher.js";
import { platformForLabels } from "../namespace/platform.js";
import type { Platform, Store } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { CredentialSource } from "./credentials.js";
import { Records } from "./records.js";
import { ActingLoops } from "./loops.js";
import { RegistrationSweep } from "./registration-sweep.js";
import { dispatcherRoutes } from "./routes.js";
import { Scheduler } from "./scheduler.js";
import { Supervisor } from "./supervisor.js";

export interface DispatcherDeps {
  config: DispatcherConfig;
  logger: Logger;
  store: Store;
  forgejo: ForgejoApi;
  launchers: Partial<Record<Platform, Launcher>>;
  metrics?: Metrics;
  now?: () => Date;
  /** Tests drive ticks by hand; the daemon runs them on timers. */
  timers?: boolean;
  /**
   * Who may act among replicas sharing a PostgreSQL store (src/ha/lease.ts). Absent: this process
   * is the only one (SQLite) and always acts. The dispatcher starts it and stops (releases) it.
   */
  lease?: Lease;
}

/** Finds an executable by path or on PATH, for /readyz. */
export function findExecutable(bin: string): string | undefined {
  const candidates = bin.includes("/") ? [bin] : (process.env.PATH ?? "").split(delimiter).map((d) => join(d, bin));
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

const prefixed = (key: string, problem: string | undefined) => (problem ? `${key}: ${problem}` : undefined);

/** Refuses to expose a money-spending API without credentials unless the operator said so (unsafeListenProblem). */
export function assertSafeListen(listen: string, tokens: readonly string[], allowUnauthenticated: boolean): void {
  const problem = unsafeListenProblem("dispatcher", listen, { tokens, allow_unauthenticated: allowUnauthenticated });
  if (problem) throw new Error(problem);
}

export interface Dispatcher {
  app: FastifyInstance;
  ctx: DispatcherContext;
  scheduler: Scheduler;
  supervisor: Supervisor;
  registrationSweep: RegistrationSweep;
  lease: Lease;
  /** Recovers interrupted work, then starts scheduling and supervision (once it holds the lease, with replicas). */
  start(): Promise<void>;
  /** Stops accepting and waits (bounded) for launches in progress; running runners stay alive. */
  stop(): Promise<void>;
}

export async function createDispatcher(deps: DispatcherDeps): Promise<Dispatcher> {
  const { config, logger } = deps;
  const lease = deps.lease ?? new SoleLease("dispatcher");
  const { ctx, api } = dispatcherContexts(deps, lease);
  const scheduler = new Scheduler(ctx);
  const supervisor = new Supervisor(ctx, scheduler);
  const sweep = new RegistrationSweep(ctx);
  let accepting = true;
  const app = await dispatcherServer(deps, api, scheduler, lease, () => accepting);

  const loops = new ActingLoops({ ctx, store: ctx.records.store, scheduler, supervisor, sweep, lease, timers: deps.timers !== false });
  return {
    app,
    ctx,
    scheduler,
    supervisor,
    registrationSweep: sweep,
    lease,
    start: () => loops.start(),
    async stop() {
      accepting = false;
      loops.stopTicking();
      const drained = await scheduler.drain(config.dispatcher.shutdown_timeout);
      if (!drained)
        logger.warn("launches still in progress at shutdown; they are recorded as launching and will be settled on the next start");
      // Only after acting stopped: another replica may take over from here.
      await loops.releaseLease();
      await app.close();
    },
  };
}

/**
 * What every part of the dispatcher shares; with replicas, Forgejo and the launchers are gated by
 * the lease, and the acting work's records (`ctx`: scheduler, launches, supervisor, recovery,
 * pruning) are fenced by it in the database (Store.fenced). The API's (`api`: accepting,
 * cancelling) are not: a standby serves requests. Both share one Records event stream.
 */
function dispatcherContexts(deps: DispatcherDeps, lease: Lease): { ctx: DispatcherContext; api: DispatcherContext } {
  const { config, logger } = deps;
  const metrics = deps.metrics ?? new Metrics({ daemon: "dispatcher" });
  const now = deps.now ?? (() => new Date());
  const records = new Records(deps.store, logger, metrics, now);
  const replicated = !(lease instanceof SoleLease);
  const actingRecords = replicated ? records.fenced(lease) : records;
  const acting = () => lease.held();
  // With replicas, every effect on Namespace and Forgejo is checked against the lease right before it happens.
  const forgejo = replicated ? gateForgejo(deps.forgejo, acting) : deps.forgejo;
  const ctx: DispatcherContext = {
    config,
    records: actingRecords,
    forgejo,
    creds: new CredentialSource(forgejo, config, now, (message) => logger.warn(message)),
    launchers: replicated ? gateLaunchers(deps.launchers, acting) : deps.launchers,
    logger,
    metrics,
    now,
    ...(replicated ? { acting } : {}),
  };
  if (replicated) registerLeaseMetrics(metrics.registry, lease);
  return { ctx, api: { ...ctx, records } };
}

/** The HTTP server: refuses POSTs once shutting down, health and readiness, and the API routes (on the unfenced records). */
async function dispatcherServer(
  deps: DispatcherDeps,
  ctx: DispatcherContext,
  scheduler: Scheduler,
  lease: Lease,
  accepting: () => boolean,
): Promise<FastifyInstance> {
  const { config, logger } = deps;
  const app = createServer({
    daemon: "dispatcher",
    logger,
    bodyLimit: config.http.body_limit,
    trustProxy: config.http.trust_proxy,
    limits: config.http,
  });
  const auth = bearerAuth(config.auth.tokens);
  app.addHook("onRequest", async (req, reply) => {
    if (!accepting() && req.method === "POST") {
      return reply
        .status(503)
        .header("retry-after", "5")
        .send({ error: "shutting_down", message: "the dispatcher is shutting down; retry against the new instance" });
    }
  });
  registerHealth(app, {
    metrics: ctx.metrics,
    metricsAuth: config.auth.protect_metrics ? (auth as never) : undefined,
    checks: readinessChecks(deps, accepting),
    // A standby is ready (it accepts and answers); the body says which replica acts.
    details: () => ({ lease: lease.status() }),
  });
  await app.register(dispatcherRoutes, {
    ctx,
    scheduler,
    auth,
    spendLimit: rateLimit(config.http.rate_limit_per_minute),
    accept: { config, records: ctx.records, platformFor: platformForLabels },
  });
  return app;
}

/** What /readyz checks: nsc, the Namespace token file, the state database, and that it still accepts. */
function readinessChecks(deps: DispatcherDeps, accepting: () => boolean): ReadinessCheck[] {
  const { config } = deps;
  return [
    {
      name: "nsc",
      check: () =>
        findExecutable(config.namespace.nsc_binary)
          ? undefined
          : `nsc executable "${config.namespace.nsc_binary}" not found; set namespace.nsc_binary`,
    },
    {
      name: "namespace_token",
      check: () =>
        config.namespace.token_file ? prefixed("namespace.token_file", tokenFileProblem(config.namespace.token_file)) : undefined,
    },
    // Not ready while records cannot be written: a dispatch would be refused (503) anyway.
    { name: "state", check: () => deps.store.writeProblem() },
    { name: "accepting", check: () => (accepting() ? undefined : "shutting down") },
  ];
}
