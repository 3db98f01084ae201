import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { AutoscalerConfig } from "../config/autoscaler-schema.js";
import { configWarnings } from "../config/autoscaler-schema.js";
import type { ForgejoApi } from "../forgejo/types.js";
import { bearerAuth } from "../http/auth.js";
import { registerHealth } from "../http/health.js";
import type { Metrics } from "../http/metrics.js";
import { createServer } from "../http/server.js";
import type { Clock } from "../shared/clock.js";
import type { DispatcherClient } from "./dispatcher-client.js";
import { InstanceReconciler } from "./reconciler.js";
import type { ReconcilerOptions } from "./reconciler.js";
import { statusRoutes } from "./status-routes.js";
import { ensureConfiguredWebhook, startWebhookSetup } from "./webhook-setup.js";
import type { EnsureWebhook } from "./webhook-setup.js";
import { webhookRoutes } from "./webhook-routes.js";
import type { WebhookInstance } from "./webhook-routes.js";

/** What an instance talks to: its Forgejo and its dispatcher. */
export interface InstanceClients {
  api: ForgejoApi;
  dispatcher: DispatcherClient;
}

export interface AutoscalerDeps {
  config: AutoscalerConfig;
  logger: Logger;
  metrics: Metrics;
  /** Per instance name; built by buildAutoscalerDeps (wiring.ts), tests may wrap them. */
  clients: ReadonlyMap<string, InstanceClients>;
  now?: Clock;
  ensureWebhook?: EnsureWebhook;
  /** Per-reconciler overrides (tests: shorter retry pauses). */
  tuning?: Pick<ReconcilerOptions, "detectRetryMs" | "dispatchRetryBaseMs" | "pollIntervalMs" | "resyncIntervalMs">;
  webhookRetry?: { first: number; max: number };
}

export interface Autoscaler {
  app: FastifyInstance;
  reconcilers: InstanceReconciler[];
  metrics: Metrics;
  /** Starts detection, reconciles and webhook setup, all in the background. */
  start(): void;
  /** Stops timers, waits for passes in progress, closes the server. */
  stop(): Promise<void>;
}

export async function createAutoscaler(deps: AutoscalerDeps): Promise<Autoscaler> {
  const { config, logger, metrics } = deps;
  const ensure = deps.ensureWebhook ?? ensureConfiguredWebhook;
  for (const w of configWarnings(config)) logger.warn(w);

  const reconcilers: InstanceReconciler[] = [];
  const hooks = new Map<string, WebhookInstance>();
  for (const inst of config.instances) {
    const clients = deps.clients.get(inst.name);
    if (!clients) throw new Error(`no clients were built for instance ${inst.name}`);
    const r = new InstanceReconciler({
      config: inst,
      api: clients.api,
      dispatcher: clients.dispatcher,
      logger,
      metrics,
      now: deps.now,
      debounceMs: config.webhooks.debounce,
      ...deps.tuning,
    });
    reconcilers.push(r);
    hooks.set(inst.name, { reconciler: r, secret: inst.webhook_secret });
  }

  const app = createServer({ daemon: "autoscaler", logger, bodyLimit: config.http.body_limit, trustProxy: config.http.trust_proxy, limits: config.http });
  const auth = bearerAuth(config.auth.tokens);
  registerHealth(app, {
    metrics,
    metricsAuth: config.auth.protect_metrics ? (auth as never) : undefined,
    checks: reconcilers.map((r) => ({ name: r.name, check: () => r.readiness() })),
  });
  await app.register(statusRoutes, { reconcilers, auth });
  await app.register(webhookRoutes, { instances: hooks, metrics, bodyLimit: config.webhooks.body_limit });

  const setups: { stop: () => void; done: Promise<void> }[] = [];
  return {
    app,
    reconcilers,
    metrics,
    start() {
      for (const r of reconcilers) r.start();
      for (const inst of config.instances) {
        if (!inst.webhook) continue;
        const r = reconcilers.find((x) => x.name === inst.name) as InstanceReconciler;
        setups.push(
          startWebhookSetup({
            instance: inst.name,
            api: (deps.clients.get(inst.name) as InstanceClients).api,
            scope: inst.scope,
            config: inst.webhook,
            secret: inst.webhook_secret,
            info: () => r.serverInfo(),
            ensure,
            logger,
            onState: (s, m) => r.setWebhookState(s, m),
            retry: deps.webhookRetry,
          }),
        );
      }
    },
    async stop() {
      for (const s of setups) s.stop();
      await Promise.all(reconcilers.map((r) => r.stop()));
      await Promise.allSettled(setups.map((s) => s.done));
      await app.close();
    },
  };
}
