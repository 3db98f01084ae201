import { COUNTS_TOWARD_DEMAND_STATES, isOneOf } from "../api/states.js";
import type { Logger } from "pino";
import type { InstanceConfig } from "../config/autoscaler-schema.js";
import type { ActionRunJob, ForgejoApi, ServerInfo } from "../forgejo/types.js";
import type { Clock } from "../shared/clock.js";
import { errorMessage } from "../shared/error-message.js";
import type { Actor, ActResult } from "./act.js";
import type { DispatcherClient } from "./dispatcher-client.js";
import { jobBaseKey } from "./keys.js";
import { canListRunners, observe, webhooksOnly } from "./observe.js";
import type { Observation } from "./observe.js";
import { isWaiting, plan } from "./plan.js";
import type { Plan } from "./plan.js";
import type { WebhookHints } from "./reconciler-hints.js";
import type { ServerMode } from "./reconciler-mode.js";
import type { InstanceRecord } from "./reconciler-status.js";
import type { InstanceTargets } from "./reconciler-targets.js";

const FOLLOW_UP_MS = 200;
const MAX_FOLLOW_UPS = 5;

export interface PassParts {
  config: InstanceConfig;
  api: ForgejoApi;
  dispatcher: DispatcherClient;
  clock: Clock;
  log: Logger;
  pollMs: number;
  server: ServerMode;
  record: InstanceRecord;
  hints: WebhookHints;
  targets: InstanceTargets;
  actor: Actor;
}

/**
 * The body of one reconcile pass: observe → plan → act, then what it means for the next one. A
 * pass that could not see or do everything counts as failed and asks for a retry with backoff
 * (capped at poll_interval while polling); a dispatcher answer that changes the next plan asks
 * for a quick follow-up (a few in a row at most).
 */
export class ReconcilePass {
  private errorStreak = 0;
  private followUps = 0;

  constructor(private readonly p: PassParts) {}

  private now(): number {
    return this.p.clock().getTime();
  }

  /** One observe → plan → act; returns how soon the next pass is wanted, if sooner than usual. */
  async run(info: ServerInfo): Promise<number | undefined> {
    const started = this.now();
    this.p.record.polled(started);
    const c = this.p.config;
    let obs: Observation;
    try {
      obs = await observe({
        api: this.p.api,
        info,
        dispatcher: this.p.dispatcher,
        scope: c.scope,
        targetLabels: c.targets.map((t) => t.labels),
        now: this.p.clock,
      });
    } catch (err) {
      return this.fail(errorMessage(err));
    }
    const onlyWebhooks = webhooksOnly(info) !== undefined;
    // Without a jobs API the jobs are what workflow_job deliveries announced; with Forgejo away,
    // what webhooks told us and nothing else (no warm-pool changes).
    const jobs = this.p.hints.jobsFor(obs, onlyWebhooks, started);
    if (!jobs) return this.fail(`jobs: ${obs.jobsError ?? "unknown error"}`);

    if (obs.jobs) this.p.targets.noteArrivals(obs.jobs, this.now());
    const p = this.plan(info, obs, jobs, onlyWebhooks);
    const live = new Set(obs.inFlight.filter((r) => isOneOf(COUNTS_TOWARD_DEMAND_STATES, r.state)).map((r) => r.name));
    const result = await this.p.actor.act(p, live);
    this.p.record.recordPass(p, result, obs.jobs === undefined ? obs.jobsError : undefined);
    if (obs.jobs) this.p.actor.prune(new Set(obs.jobs.filter(isWaiting).map((j) => jobBaseKey(c.name, j))));
    return this.settle(info, obs, result);
  }

  private plan(info: ServerInfo, obs: Observation, jobs: ActionRunJob[], onlyWebhooks: boolean): Plan {
    const targets = this.p.targets.planTargets(this.now());
    return plan({
      instance: this.p.config.name,
      now: this.now(),
      observedAt: obs.observedAt,
      // Without the job list nothing is known about what idle runners are about to take: no warm-pool changes.
      targets: obs.jobs ? targets : targets.map((t) => ({ ...t, minIdle: 0, warmIdleTimeoutMs: undefined, warmRetireBeforeMs: undefined })),
      jobs,
      handles: info.jobHandles,
      registered: obs.registered,
      registeredFailed: canListRunners(info) && obs.registered === undefined,
      inFlight: obs.inFlight,
      book: this.p.actor.book,
      warm: this.p.actor.warmState(),
      jobsComplete: obs.jobs !== undefined && !onlyWebhooks,
    });
  }

  /** After acting: the pass's problems (or its success, and the mode switch), and follow-ups. */
  private settle(info: ServerInfo, obs: Observation, result: ActResult): number | undefined {
    let delay: number | undefined;
    const problems = [
      obs.jobsError ? `jobs: ${obs.jobsError}` : undefined,
      obs.registeredError ? `runners: ${obs.registeredError}` : undefined,
      result.failed > 0 ? `dispatcher: ${result.lastError}` : undefined,
    ].filter((x): x is string => x !== undefined);
    if (problems.length > 0) {
      const retry = this.fail(problems.join("; "));
      delay = result.retryAfterMs ?? retry;
    } else {
      // The failure was warned about once (repeats go to debug): say when it is over.
      if (this.errorStreak > 0) this.p.log.info({ failedPasses: this.errorStreak }, "reconcile pass complete again");
      this.errorStreak = 0;
      this.p.record.succeeded(this.now(), result.rejected > 0 ? (result.lastError ?? "dispatcher refused a request") : undefined);
      this.p.server.passSucceeded(info);
    }
    if (result.followUp && this.followUps < MAX_FOLLOW_UPS) {
      this.followUps++;
      delay = Math.min(delay ?? FOLLOW_UP_MS, FOLLOW_UP_MS);
    } else if (!result.followUp) {
      this.followUps = 0;
    }
    return delay;
  }

  private retryDelay(): number {
    const cap = this.p.server.mode === "polling" ? this.p.pollMs : 60_000;
    return Math.min(1000 * 2 ** Math.max(0, this.errorStreak - 1), cap);
  }

  /** Records an incomplete pass; returns the pause before the next attempt. */
  private fail(message: string): number {
    this.errorStreak++;
    this.p.record.failed(this.now(), message);
    this.p.log.warn({ err: message }, "reconcile pass incomplete");
    return this.retryDelay();
  }
}
