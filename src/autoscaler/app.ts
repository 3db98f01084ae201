import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { AutoscalerConfig, InstanceConfig } from "../config/autoscaler-schema.js";
import { configWarnings, dispatcherFor } from "../config/autoscaler-schema.js";
import { ForgejoClient } from "../forgejo/client.js";
import type { ForgejoApi } from "../forgejo/types.js";
import { bearerAuth } from "../http/auth.js";
import { registerHealth } from "../http/health.js";
import { Metrics } from "../http/metrics.js";
import { createServer } from "../http/server.js";
import type { Clock } from "../shared/clock.js";
import { DispatcherClient } from "./dispatcher-client.js";
import { InstanceReconciler } from "./reconciler.js";
import type { ReconcilerOptions } from "./reconciler.js";
import { statusRoutes } from "./status-routes.js";
import { ensureConfiguredWebhook, startWebhookSetup } from "./webhook-setup.js";
import type { EnsureWebhook } from "./webhook-setup.js";
import { webhookRoutes } from "./webhook-routes.js";
import type { WebhookInstance } from "./webhook-routes.js";

export interface AutoscalerDeps {
  config: AutoscalerConfig;
  logger: Logger;
  metrics?: Metrics;
  now?: Clock;
  /** Builds the Forgejo client of an instance (tests may wrap it). */
  apiFor?: (inst: InstanceConfig) => ForgejoApi;
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
  const { config, logger } = deps;
  const metrics = deps.metrics ?? new Metrics({ daemon: "autoscaler" });
  const ensure = deps.ensureWebhook ?? ensureConfiguredWebhook;
  for (const w of configWarnings(config)) logger.warn(w);

  const reconcilers: InstanceReconciler[] = [];
  const hooks = new Map<string, WebhookInstance>();
  const apis = new Map<string, ForgejoApi>();
  for (const inst of config.instances) {
    const api =
      deps.apiFor?.(inst) ??
      new ForgejoClient({
        baseUrl: inst.forgejo.base_url,
        token: inst.forgejo.token ?? "",
        timeoutMs: inst.forgejo.timeout,
        extraHeaders: inst.forgejo.extra_headers,
        logger: logger.child({ instance: inst.name }),
        metrics,
        kind: inst.forgejo.kind === "auto" ? undefined : inst.forgejo.kind,
      });
    apis.set(inst.name, api);
    const endpoint = dispatcherFor(config, inst);
    const dispatcher = new DispatcherClient({ url: endpoint.url, timeoutMs: endpoint.timeoutMs, token: endpoint.token, metrics });
    const r = new InstanceReconciler({
      config: inst,
      api,
      dispatcher,
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
            api: apis.get(inst.name) as ForgejoApi,
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
