import { accessSync, constants as fsConstants } from "node:fs";
import { delimiter, join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import { isLoopbackHost, splitListen } from "../config/common.js";
import { tokenFileProblem } from "../config/token-file.js";
import type { ForgejoApi } from "../forgejo/types.js";
import { bearerAuth } from "../http/auth.js";
import { registerHealth } from "../http/health.js";
import { Metrics } from "../http/metrics.js";
import { rateLimit } from "../http/rate-limit.js";
import { createServer } from "../http/server.js";
import type { Launcher } from "../namespace/launcher.js";
import { platformForLabels } from "../namespace/platform.js";
import type { Platform, Store } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";
import { CredentialSource } from "./credentials.js";
import { Records } from "./records.js";
import { recover } from "./recovery.js";
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

/** Refuses to expose a money-spending API without credentials unless the operator said so. */
export function assertSafeListen(listen: string, tokens: readonly string[], allowUnauthenticated: boolean): void {
  const { host } = splitListen(listen);
  if (tokens.length === 0 && !isLoopbackHost(host) && !allowUnauthenticated) {
    throw new Error(
      `refusing to listen on ${listen} without API tokens: anyone who can reach it could start paid instances. ` +
        "Set auth.tokens (or auth.tokens_file), listen on 127.0.0.1, or set auth.allow_unauthenticated: true on a trusted network.",
    );
  }
}

export interface Dispatcher {
  app: FastifyInstance;
  ctx: DispatcherContext;
  scheduler: Scheduler;
  supervisor: Supervisor;
  registrationSweep: RegistrationSweep;
  /** Recovers interrupted work, then starts scheduling and supervision. */
  start(): Promise<void>;
  /** Stops accepting and waits (bounded) for launches in progress; running runners stay alive. */
  stop(): Promise<void>;
}

export async function createDispatcher(deps: DispatcherDeps): Promise<Dispatcher> {
  const { config, logger } = deps;
  const metrics = deps.metrics ?? new Metrics({ daemon: "dispatcher" });
  const now = deps.now ?? (() => new Date());
  const records = new Records(deps.store, logger, metrics, now);
  const ctx: DispatcherContext = {
    config,
    records,
    forgejo: deps.forgejo,
    creds: new CredentialSource(deps.forgejo, config, now, (message) => logger.warn(message)),
    launchers: deps.launchers,
    logger,
    metrics,
    now,
  };
  const scheduler = new Scheduler(ctx);
  const supervisor = new Supervisor(ctx, scheduler);
  const sweep = new RegistrationSweep(ctx);

  const app = createServer({ logger, bodyLimit: config.http.body_limit, trustProxy: config.http.trust_proxy, limits: config.http });
  const auth = bearerAuth(config.auth.tokens);
  let accepting = true;
  app.addHook("onRequest", async (req, reply) => {
    if (!accepting && req.method === "POST") {
      return reply.status(503).header("retry-after", "5").send({ error: "shutting_down", message: "the dispatcher is shutting down; retry against the new instance" });
    }
  });
  registerHealth(app, {
    metrics,
    metricsAuth: config.auth.protect_metrics ? (auth as never) : undefined,
    checks: [
      { name: "nsc", check: () => (findExecutable(config.namespace.nsc_binary) ? undefined : `nsc executable "${config.namespace.nsc_binary}" not found; set namespace.nsc_binary`) },
      { name: "namespace_token", check: () => (config.namespace.token_file ? prefixed("namespace.token_file", tokenFileProblem(config.namespace.token_file)) : undefined) },
      // Not ready while records cannot be written: a dispatch would be refused (503) anyway.
      { name: "state", check: () => deps.store.writeProblem() },
      { name: "accepting", check: () => (accepting ? undefined : "shutting down") },
    ],
  });
  await app.register(dispatcherRoutes, {
    ctx,
    scheduler,
    auth,
    spendLimit: rateLimit(config.http.rate_limit_per_minute),
    accept: { config, records, platformFor: platformForLabels },
  });

  const intervals: NodeJS.Timeout[] = [];
  let ticks = 0;
  return {
    app,
    ctx,
    scheduler,
    supervisor,
    registrationSweep: sweep,
    async start() {
      const report = await recover(ctx);
      if (report.adopted.length + report.completed.length + report.requeued.length + report.failed.length > 0) {
        logger.info(report, "recovered interrupted launches");
      }
      // A platform whose instances could not be listed now is recovered on a later tick.
      if (report.unobservable.length > 0) supervisor.recoverOnNextTick();
      scheduler.kick();
      if (deps.timers === false) return;
      const tick = () => {
        ticks += 1;
        void supervisor.tick().catch((err) => logger.error({ err: errorMessage(err) }, "supervision tick failed"));
        scheduler.kick();
        if (ticks % 6 === 1) void sweep.run().catch((err) => logger.warn({ err: errorMessage(err) }, "registration sweep failed"));
        if (ticks % 360 === 1) {
          void deps.store
            .pruneFinished(new Date(now().getTime() - config.dispatcher.retention))
            .then((n) => n > 0 && logger.info({ pruned: n }, "pruned finished runner records"))
            .catch((err) => logger.warn({ err: errorMessage(err) }, "pruning finished runner records failed; it is tried again later"));
        }
      };
      intervals.push(setInterval(tick, config.dispatcher.supervise_interval));
      tick();
    },
    async stop() {
      accepting = false;
      for (const i of intervals) clearInterval(i);
      const drained = await scheduler.drain(config.dispatcher.shutdown_timeout);
      if (!drained) logger.warn("launches still in progress at shutdown; they are recorded as launching and will be settled on the next start");
      await app.close();
    },
  };
}
