import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * Every Prometheus metric of both daemons, in one place so names and label sets stay consistent
 * and low-cardinality (no runner names, job ids or URLs as label values). Documented in README.md.
 */
export class Metrics {
  readonly registry = new Registry();

  // dispatcher
  readonly dispatchRequests = new Counter({
    name: "forgejo_nsc_dispatch_requests_total",
    help: "Dispatch requests by outcome (accepted, duplicate, conflict, invalid, forbidden, queue_full, unauthorized).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly runnersByState = new Gauge({
    name: "forgejo_nsc_runners",
    help: "Runners by state and platform.",
    labelNames: ["state", "platform"] as const,
    registers: [this.registry],
  });
  readonly runnerTransitions = new Counter({
    name: "forgejo_nsc_runner_transitions_total",
    help: "Runner state transitions by target state.",
    labelNames: ["to"] as const,
    registers: [this.registry],
  });
  readonly launchDuration = new Histogram({
    name: "forgejo_nsc_launch_duration_seconds",
    help: "Time from the start of a launch to a ready instance.",
    labelNames: ["platform", "outcome"] as const,
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
    registers: [this.registry],
  });
  readonly timeToRunning = new Histogram({
    name: "forgejo_nsc_time_to_running_seconds",
    help: "Time from accepting a dispatch to a running runner.",
    labelNames: ["platform"] as const,
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly namespaceCalls = new Counter({
    name: "forgejo_nsc_namespace_calls_total",
    help: "nsc CLI and Compute API calls by command and outcome.",
    labelNames: ["api", "command", "outcome"] as const,
    registers: [this.registry],
  });
  readonly superviseDuration = new Histogram({
    name: "forgejo_nsc_supervise_tick_seconds",
    help: "Duration of one supervision pass over every live runner.",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
    registers: [this.registry],
  });

  // shared
  readonly forgejoCalls = new Counter({
    name: "forgejo_nsc_forgejo_calls_total",
    help: "Forgejo API calls by endpoint family and HTTP status (0 = no response).",
    labelNames: ["endpoint", "status"] as const,
    registers: [this.registry],
  });

  // autoscaler
  readonly webhookDeliveries = new Counter({
    name: "forgejo_nsc_webhook_deliveries_total",
    help: "Webhook deliveries by configured instance and result (accepted, bad_signature, unknown_instance, too_large, malformed).",
    labelNames: ["instance", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: "forgejo_nsc_reconcile_duration_seconds",
    help: "Duration of one observe-plan-act pass per instance.",
    labelNames: ["instance"] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly lastReconcile = new Gauge({
    name: "forgejo_nsc_last_successful_reconcile_timestamp_seconds",
    help: "Unix time of the last successful reconcile per instance.",
    labelNames: ["instance"] as const,
    registers: [this.registry],
  });
  readonly waitingJobs = new Gauge({
    name: "forgejo_nsc_waiting_jobs",
    help: "Jobs waiting for a runner per instance and target (target \"none\" = no target matches).",
    labelNames: ["instance", "target"] as const,
    registers: [this.registry],
  });
  readonly idleRunners = new Gauge({
    name: "forgejo_nsc_idle_runners",
    help: "Idle registered runners per instance and target.",
    labelNames: ["instance", "target"] as const,
    registers: [this.registry],
  });
  readonly inFlightRunners = new Gauge({
    name: "forgejo_nsc_in_flight_runners",
    help: "Runners requested from the dispatcher and not yet finished, per instance and target.",
    labelNames: ["instance", "target"] as const,
    registers: [this.registry],
  });
  readonly dispatcherCalls = new Counter({
    name: "forgejo_nsc_dispatcher_calls_total",
    help: "Autoscaler calls to the dispatcher by outcome.",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "forgejo_nsc_process_" });
  }
}
