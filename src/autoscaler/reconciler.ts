import type { Logger } from "pino";
import type { InstanceConfig } from "../config/autoscaler-schema.js";
import type { ForgejoApi, ServerInfo } from "../forgejo/types.js";
import type { Metrics } from "../http/metrics.js";
import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";
import { errorMessage } from "../shared/error-message.js";
import { SingleFlight } from "../shared/single-flight.js";
import { Actor } from "./act.js";
import type { ActResult } from "./act.js";
import type { DispatcherClient } from "./dispatcher-client.js";
import type { Plan } from "./plan.js";
import { WebhookHints } from "./reconciler-hints.js";
import { ReconcilePass } from "./reconciler-pass.js";
import type { WorkflowJobEvent } from "./reconciler-hints.js";
import { ServerMode } from "./reconciler-mode.js";
import { InstanceRecord } from "./reconciler-status.js";
import type { WebhookSetupState } from "./reconciler-status.js";
import { InstanceTargets } from "./reconciler-targets.js";
import type { InstanceStatus } from "./status.js";

export type { WorkflowJobEvent } from "./reconciler-hints.js";

export interface ReconcilerOptions {
  config: InstanceConfig;
  api: ForgejoApi;
  dispatcher: DispatcherClient;
  logger: Logger;
  metrics: Metrics;
  now?: Clock | undefined;
  /** Deliveries within this window cause one pass. */
  debounceMs?: number;
  /** Overrides config.poll_interval / resync_interval (tests). */
  pollIntervalMs?: number;
  resyncIntervalMs?: number;
  /** First and largest pause between attempts to reach Forgejo at start. */
  detectRetryMs?: { first: number; max: number };
  /** Pauses between attempts of one dispatcher request inside a pass. */
  dispatchRetryBaseMs?: number;
  /** With replicas: whether this one holds the lease; passes run only then (a standby's timer lapses). */
  acting?: () => boolean;
}

/**
 * One Forgejo instance: detect what the server can do (ServerMode), then observe → plan → act on a
 * timer and whenever a webhook says something changed. Passes never overlap; a request during a
 * pass runs one more pass right after it (SingleFlight). What each pass found is kept in an
 * InstanceRecord for status and readiness; Gitea workflow_job deliveries leave WebhookHints.
 *
 * Modes: "polling" passes every poll_interval. On Gitea, once a valid workflow_job delivery has
 * been processed, "resync" passes every resync_interval (or, with resync_interval 0, "webhooks":
 * no timer at all, the original behaviour). Forgejo sends no workflow_job, so it never stops polling.
 */
export class InstanceReconciler {
  readonly name: string;
  readonly actor: Actor;
  private readonly server: ServerMode;
  private readonly record: InstanceRecord;
  private readonly hints: WebhookHints;
  private readonly flight: SingleFlight;
  private readonly body: ReconcilePass;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly debounceMs: number;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private passes = 0;

  constructor(private readonly opts: ReconcilerOptions) {
    const c = opts.config;
    const clock = opts.now ?? systemClock;
    this.name = c.name;
    this.now = () => clock().getTime();
    this.log = opts.logger.child({ instance: c.name });
    this.pollMs = opts.pollIntervalMs ?? c.poll_interval;
    this.debounceMs = opts.debounceMs ?? 1000;
    this.record = new InstanceRecord(c, opts.metrics);
    this.hints = new WebhookHints(Math.max(10 * this.pollMs, 600_000));
    const targets = new InstanceTargets(c, this.log);
    this.server = new ServerMode({
      config: c,
      api: opts.api,
      log: this.log,
      resyncMs: opts.resyncIntervalMs ?? c.resync_interval,
      detectRetryMs: opts.detectRetryMs,
      onDetectError: (message) => this.record.failed(this.now(), message),
      onReady: () => {
        this.record.lastError = undefined;
        this.schedule(0);
      },
    });
    this.flight = new SingleFlight(
      () => this.pass(),
      (err) => this.log.error({ err: errorMessage(err) }, "reconcile pass failed unexpectedly"),
    );
    this.actor = new Actor({
      instance: c.name,
      client: opts.dispatcher,
      logger: this.log,
      now: clock,
      bodyFor: (t) => targets.bodyFor(t),
      retryBaseMs: opts.dispatchRetryBaseMs,
    });
    this.body = new ReconcilePass({
      ...opts,
      clock,
      log: this.log,
      pollMs: this.pollMs,
      server: this.server,
      record: this.record,
      hints: this.hints,
      targets,
      actor: this.actor,
    });
  }

  /** Number of completed passes (tests wait on it). */
  get passCount(): number {
    return this.passes;
  }

  get info(): ServerInfo | undefined {
    return this.server.info;
  }

  get mode(): InstanceStatus["mode"] {
    return this.server.mode;
  }

  get startupError(): string | undefined {
    return this.server.startupError;
  }

  /** Starts detection in the background; it retries until Forgejo answers. */
  start(): void {
    this.server.start();
  }

  /** Resolves with the ServerInfo once Forgejo has answered (webhook setup waits for it). */
  serverInfo(): Promise<ServerInfo> {
    return this.server.serverInfo();
  }

  setWebhookState(setup: WebhookSetupState, message: string | null): void {
    this.record.setWebhookState(setup, message);
  }

  /** A valid delivery that is not a Gitea workflow_job: look again soon (debounced). */
  onDelivery(event: string): void {
    this.record.delivered(this.now(), event);
    this.requestPass(this.debounceMs);
  }

  /**
   * A Gitea workflow_job delivery. queued: a pass now, with the job as a hint. Gitea's "waiting"
   * is its internal *blocked* (needs, approval; docs/upstream-contracts.md#gitea-differences): no
   * runner could take the job yet, so it only makes the next look sooner; "queued" follows once it
   * can run.
   */
  onWorkflowJob(e: WorkflowJobEvent): void {
    this.record.delivered(this.now(), `workflow_job.${e.action}`);
    this.server.workflowJobArrived();
    if (e.action === "queued") {
      this.hints.add(e, this.now());
      this.requestPass(0);
    } else {
      this.hints.delete(e.id);
      // completed: a runner was used up, refill the warm pool; in_progress: counts changed.
      this.requestPass(e.action === "completed" ? 0 : this.debounceMs);
    }
  }

  /** Runs a pass after `delayMs` unless one is already due sooner. */
  requestPass(delayMs: number): void {
    if (this.stopped || !this.server.ready) return;
    this.schedule(delayMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    const at = this.now() + delayMs;
    if (this.timer && this.timerAt !== undefined && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = undefined;
        // A standby passes nothing; the replica that gains the lease asks for a pass (requestPass).
        if (this.opts.acting?.() === false) return;
        this.flight.kick();
      },
      Math.max(0, delayMs),
    );
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }

  private async pass(): Promise<void> {
    // A pass requested while the last one ran starts here: it stands for any timer still pending.
    this.clearTimer();
    await this.server.refresh();
    const info = this.server.info;
    if (!info) return;
    const wall = performance.now();
    let delay: number | undefined;
    try {
      delay = await this.body.run(info);
    } finally {
      this.passes++;
      this.opts.metrics.reconcileDuration.observe({ forge: this.name }, (performance.now() - wall) / 1000);
      const next = [delay, this.server.regularDelay(this.pollMs)].filter((d): d is number => d !== undefined);
      if (next.length > 0) this.schedule(Math.min(...next));
    }
  }

  status(): InstanceStatus {
    const s = this.server;
    return this.record.status({
      info: s.info,
      mode: s.mode,
      modeReason: s.modeReason,
      startupError: s.startupError,
      workflowJobSeen: s.workflowJobSeen,
      nextPassAt: this.timerAt,
      now: this.now(),
    });
  }

  /** A problem for /readyz, or undefined. An instance that can never be served does not block readiness. */
  readiness(): string | undefined {
    return this.record.readiness(this.server.startupError);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.flight.stop();
    this.server.stop();
    this.clearTimer();
    await this.flight.idle();
  }

  /** For tests and status: the last plan and act result. */
  get last(): { plan: Plan | undefined; act: ActResult | undefined } {
    return { plan: this.record.lastPlan, act: this.record.lastAct };
  }
}
