import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { AutoscalerConfig } from "../config/autoscaler-schema.js";
import { configWarnings } from "../config/autoscaler-schema.js";
import type { ForgejoApi } from "../forgejo/types.js";
import type { Lease } from "../ha/lease.js";
import { SoleLease } from "../ha/lease.js";
import { registerLeaseMetrics } from "../ha/lease-metrics.js";
import type { WebhookRelay } from "../ha/webhook-relay.js";
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
  /**
   * With replicas (src/ha/autoscaler-replicas.ts): the lease that says which replica reconciles,
   * and the relay that brings it the webhooks the others receive. The autoscaler starts and stops both.
   */
  replicas?: { lease: Lease; relay: WebhookRelay } | undefined;
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
  for (const w of configWarnings(config)) logger.warn(w);

  const lease = deps.replicas?.lease ?? new SoleLease("autoscaler");
  const relay = deps.replicas?.relay;
  const acting = () => lease.held();
  if (deps.replicas) registerLeaseMetrics(metrics.registry, lease);
  const { reconcilers, hooks } = buildReconcilers(deps, acting);
  const app = await autoscalerServer(deps, reconcilers, hooks, lease);
  const setups = webhookSetups(deps, reconcilers);
  return {
    app,
    reconcilers,
    metrics,
    start() {
      for (const r of reconcilers) r.start();
      // The replica that gains the lease reconciles now (and sets up webhooks, once).
      lease.onChange((c) => {
        if (!c.held) return;
        for (const r of reconcilers) r.requestPass(0);
        setups.start();
      });
      if (deps.replicas) void lease.start().then(() => lease.held() && setups.start());
      else setups.start();
      relay?.start(acting, (name) => reconcilers.find((r) => r.name === name));
    },
    async stop() {
      setups.stop();
      await relay?.stop();
      await Promise.all(reconcilers.map((r) => r.stop()));
      await setups.settled();
      await lease.stop();
      await app.close();
    },
  };
}

/** A reconciler per configured instance, and what the webhook routes deliver to (through the relay with replicas). */
function buildReconcilers(
  deps: AutoscalerDeps,
  acting: () => boolean,
): { reconcilers: InstanceReconciler[]; hooks: Map<string, WebhookInstance> } {
  const { config, logger, metrics } = deps;
  const relay = deps.replicas?.relay;
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
      ...(deps.replicas ? { acting } : {}),
    });
    reconcilers.push(r);
    hooks.set(inst.name, { reconciler: relay ? relayedDeliveries(r, relay, acting) : r, secret: inst.webhook_secret });
  }
  return { reconcilers, hooks };
}

/** The HTTP server: health and readiness, status and webhook routes. */
async function autoscalerServer(
  deps: AutoscalerDeps,
  reconcilers: InstanceReconciler[],
  hooks: Map<string, WebhookInstance>,
  lease: Lease,
): Promise<FastifyInstance> {
  const { config, logger, metrics } = deps;
  const app = createServer({
    daemon: "autoscaler",
    logger,
    bodyLimit: config.http.body_limit,
    trustProxy: config.http.trust_proxy,
    limits: config.http,
  });
  const auth = bearerAuth(config.auth.tokens);
  registerHealth(app, {
    metrics,
    metricsAuth: config.auth.protect_metrics ? (auth as never) : undefined,
    // A standby has no reconcile of its own to report: ready once it can serve (it relays webhooks).
    checks: reconcilers.map((r) => ({ name: r.name, check: () => (lease.held() ? r.readiness() : undefined) })),
    details: () => ({ lease: lease.status() }),
  });
  await app.register(statusRoutes, { reconcilers, auth });
  await app.register(webhookRoutes, { instances: hooks, metrics, bodyLimit: config.webhooks.body_limit });
  return app;
}

/** The webhook setups of the instances that configure one: started once (by the acting replica), stopped at shutdown. */
function webhookSetups(
  deps: AutoscalerDeps,
  reconcilers: readonly InstanceReconciler[],
): { start(): void; stop(): void; settled(): Promise<unknown> } {
  const { config, logger } = deps;
  const ensure = deps.ensureWebhook ?? ensureConfiguredWebhook;
  const setups: { stop: () => void; done: Promise<void> }[] = [];
  let started = false;
  return {
    start() {
      if (started) return;
      started = true;
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
    stop() {
      for (const s of setups) s.stop();
    },
    settled: () => Promise.allSettled(setups.map((s) => s.done)),
  };
}

/** The reconciler as the webhook routes see it: deliveries go to it while it leads, else to the leader through the relay. */
function relayedDeliveries(r: InstanceReconciler, relay: WebhookRelay, acting: () => boolean): InstanceReconciler {
  const sink = relay.relaying(r.name, { onWorkflowJob: (e) => r.onWorkflowJob(e), onDelivery: (e) => r.onDelivery(e) }, acting);
  return new Proxy(r, {
    get(target, prop, receiver) {
      if (prop === "onWorkflowJob") return sink.onWorkflowJob;
      if (prop === "onDelivery") return sink.onDelivery;
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
