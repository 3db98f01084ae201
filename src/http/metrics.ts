import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Metric } from "prom-client";
import type { DaemonName } from "./daemon.js";

/** Which daemon's families a registry serves; without one (unit tests of shared clients) it serves all. */
export type MetricsDaemon = DaemonName;

/**
 * Every Prometheus metric of both daemons, in one place so names and label sets stay consistent
 * and low-cardinality (no runner names, job ids or URLs as label values). Documented in README.md.
 * Each daemon's registry holds only its own families (and the shared ones), so neither serves the
 * other's empty ones. The autoscaler labels per-forge series `forge`: `instance` is the label
 * Prometheus gives every scraped target, and ours would be renamed `exported_instance`.
 */
export class Metrics {
  readonly registry = new Registry();

  // dispatcher
  readonly dispatchRequests = new Counter({
    name: "forgejo_nsc_dispatch_requests_total",
    help: "Dispatch requests by outcome (accepted, duplicate, conflict, invalid, forbidden, queue_full, rate_limited, unauthorized, unavailable, error).",
    labelNames: ["outcome"] as const,
    registers: [],
  });
  readonly runnersByState = new Gauge({
    name: "forgejo_nsc_runners",
    help: "Runners by state and platform.",
    labelNames: ["state", "platform"] as const,
    registers: [],
  });
  readonly runnerTransitions = new Counter({
    name: "forgejo_nsc_runner_transitions_total",
    help: "Runner state transitions by target state.",
    labelNames: ["to"] as const,
    registers: [],
  });
  readonly launchDuration = new Histogram({
    name: "forgejo_nsc_launch_duration_seconds",
    help: "Time from the start of a launch to a ready instance.",
    labelNames: ["platform", "outcome"] as const,
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
    registers: [],
  });
  readonly timeToRunning = new Histogram({
    name: "forgejo_nsc_time_to_running_seconds",
    help: "Time from accepting a dispatch to a running runner.",
    labelNames: ["platform"] as const,
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
    registers: [],
  });
  readonly namespaceCalls = new Counter({
    name: "forgejo_nsc_namespace_calls_total",
    help: "nsc CLI and Compute API calls by command and outcome.",
    labelNames: ["api", "command", "outcome"] as const,
    registers: [],
  });
  readonly superviseDuration = new Histogram({
    name: "forgejo_nsc_supervise_tick_seconds",
    help: "Duration of one supervision pass over every live runner.",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
    registers: [],
  });

  // shared
  readonly forgejoCalls = new Counter({
    name: "forgejo_nsc_forgejo_calls_total",
    help: "Forgejo API calls by endpoint family and HTTP status (0 = no response).",
    labelNames: ["endpoint", "status"] as const,
    registers: [],
  });

  // autoscaler
  readonly webhookDeliveries = new Counter({
    name: "forgejo_nsc_webhook_deliveries_total",
    help: "Webhook deliveries by configured forge instance and result (accepted, bad_signature, unknown_instance, too_large, malformed).",
    labelNames: ["forge", "result"] as const,
    registers: [],
  });
  readonly reconcileDuration = new Histogram({
    name: "forgejo_nsc_reconcile_duration_seconds",
    help: "Duration of one observe-plan-act pass per forge instance.",
    labelNames: ["forge"] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [],
  });
  readonly lastReconcile = new Gauge({
    name: "forgejo_nsc_last_successful_reconcile_timestamp_seconds",
    help: "Unix time of the last successful reconcile per forge instance.",
    labelNames: ["forge"] as const,
    registers: [],
  });
  readonly waitingJobs = new Gauge({
    name: "forgejo_nsc_waiting_jobs",
    help: 'Jobs waiting for a runner per forge instance and target (target "none" = no target matches).',
    labelNames: ["forge", "target"] as const,
    registers: [],
  });
  readonly idleRunners = new Gauge({
    name: "forgejo_nsc_idle_runners",
    help: "Idle registered runners per forge instance and target.",
    labelNames: ["forge", "target"] as const,
    registers: [],
  });
  readonly inFlightRunners = new Gauge({
    name: "forgejo_nsc_in_flight_runners",
    help: "Runners requested from the dispatcher and not yet finished, per forge instance and target.",
    labelNames: ["forge", "target"] as const,
    registers: [],
  });
  readonly dispatcherCalls = new Counter({
    name: "forgejo_nsc_dispatcher_calls_total",
    help: "Autoscaler calls to the dispatcher by outcome.",
    labelNames: ["outcome"] as const,
    registers: [],
  });

  constructor(opts: { daemon?: MetricsDaemon; defaultMetrics?: boolean } = {}) {
    const dispatcher: Metric[] = [
      this.dispatchRequests,
      this.runnersByState,
      this.runnerTransitions,
      this.launchDuration,
      this.timeToRunning,
      this.namespaceCalls,
      this.superviseDuration,
    ];
    const autoscaler: Metric[] = [
      this.webhookDeliveries,
      this.reconcileDuration,
      this.lastReconcile,
      this.waitingJobs,
      this.idleRunners,
      this.inFlightRunners,
      this.dispatcherCalls,
    ];
    const own = opts.daemon === "dispatcher" ? dispatcher : opts.daemon === "autoscaler" ? autoscaler : [...dispatcher, ...autoscaler];
    for (const m of [this.forgejoCalls, ...own]) this.registry.registerMetric(m);
    // prom-client's names already start with process_ / nodejs_: forgejo_nsc_process_cpu_seconds_total.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "forgejo_nsc_" });
  }
}
