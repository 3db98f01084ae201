import type { InstanceConfig } from "../config/autoscaler-schema.js";
import { targetName } from "../config/autoscaler-schema.js";
import { scopeKey } from "../forgejo/scope.js";
import type { ServerInfo } from "../forgejo/types.js";
import type { Metrics } from "../http/metrics.js";
import type { ActResult } from "./act.js";
import { canListRunners } from "./observe.js";
import type { Plan } from "./plan.js";
import { effectiveMinIdle } from "./schedule.js";
import type { InstanceStatus, Mode, WaitingJobStatus } from "./status.js";

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export type WebhookSetupState = "ok" | "pending" | "error";

/** What the reconcile loop and the mode switch know at the moment status is asked for. */
export interface LoopView {
  info: ServerInfo | undefined;
  mode: Mode;
  modeReason: string | undefined;
  startupError: string | undefined;
  workflowJobSeen: boolean;
  /** When the next pass is due (ms), if one is scheduled. */
  nextPassAt: number | undefined;
  /** Now (ms), for the schedule period in force. */
  now: number;
}

/**
 * One instance's record of its passes, for GET /api/v1/status, /readyz and the gauges: when it
 * last looked and succeeded, the last error, the last plan with each waiting job's reason, the
 * per-target notes, and the webhook's setup and last delivery. Times are ms.
 */
export class InstanceRecord {
  lastError: { at: number; message: string } | undefined;
  lastPlan: Plan | undefined;
  lastAct: ActResult | undefined;
  private lastPollAt: number | undefined;
  private lastSuccessAt: number | undefined;
  private lastNotes = new Map<string, string>();
  private lastWaiting: WaitingJobStatus[] = [];
  private webhook: { setup: WebhookSetupState | "not_configured"; message: string | null };
  private lastDelivery: { at: number; event: string } | undefined;

  constructor(
    private readonly config: InstanceConfig,
    private readonly metrics: Metrics,
  ) {
    this.webhook = { setup: config.webhook ? "pending" : "not_configured", message: null };
  }

  polled(at: number): void {
    this.lastPollAt = at;
  }

  failed(at: number, message: string): void {
    this.lastError = { at, message };
  }

  /** A complete pass; a refused request is still worth showing as the last error. */
  succeeded(at: number, refused: string | undefined): void {
    this.lastError = refused === undefined ? undefined : { at, message: refused };
    this.lastSuccessAt = at;
    this.metrics.lastReconcile.set({ forge: this.config.name }, Date.now() / 1000);
  }

  delivered(at: number, event: string): void {
    this.lastDelivery = { at, event };
  }

  setWebhookState(setup: WebhookSetupState, message: string | null): void {
    this.webhook = { setup, message };
  }

  /** Keeps a pass's plan and outcome: per-target gauges and notes, each waiting job's state and reason. */
  recordPass(p: Plan, result: ActResult, jobsError: string | undefined): void {
    this.lastPlan = p;
    this.lastAct = result;
    const m = this.metrics;
    const name = this.config.name;
    this.lastNotes = new Map();
    for (const t of p.targets) {
      m.waitingJobs.set({ forge: name, target: t.name }, t.waiting);
      m.inFlightRunners.set({ forge: name, target: t.name }, t.inFlight);
      if (t.idle !== null) m.idleRunners.set({ forge: name, target: t.name }, t.idle);
      const warmErr = result.warmErrors.get(t.name);
      const note = warmErr ? `warm pool: ${warmErr}` : t.warmNote;
      if (note) this.lastNotes.set(t.name, note);
    }
    m.waitingJobs.set({ forge: name, target: "none" }, p.jobs.filter((j) => j.target === null).length);
    this.lastWaiting = p.jobs.map((j) => {
      const o = result.jobs.get(j.id);
      const state = o?.state ?? j.state;
      let reason = o?.reason ?? j.reason;
      if (jobsError) reason = `${reason} (known from a webhook; Forgejo could not be asked: ${jobsError})`;
      return { id: j.id, attempt: j.attempt ?? null, handle: j.handle ?? null, runs_on: j.runs_on, target: j.target, state, reason };
    });
  }

  status(v: LoopView): InstanceStatus {
    const c = this.config;
    const info = v.info;
    return {
      name: c.name,
      base_url: c.forgejo.base_url,
      scope: scopeKey(c.scope),
      server: info ? { kind: info.kind, version: info.version, job_handles: info.jobHandles, runner_list: canListRunners(info) } : null,
      mode: v.mode,
      mode_reason: v.modeReason ?? null,
      startup_error: v.startupError ?? null,
      last_poll_at: iso(this.lastPollAt),
      last_success_at: iso(this.lastSuccessAt),
      last_error: this.lastError ? { at: new Date(this.lastError.at).toISOString(), message: this.lastError.message } : null,
      next_poll_at: iso(v.nextPassAt),
      webhook: {
        configured: c.webhook !== undefined,
        setup: this.webhook.setup,
        message: this.webhook.message,
        last_delivery_at: iso(this.lastDelivery?.at),
        last_delivery_event: this.lastDelivery?.event ?? null,
        workflow_job_seen: v.workflowJobSeen,
      },
      targets: this.targets(v.now),
      waiting_jobs: this.lastWaiting,
    };
  }

  private targets(now: number): InstanceStatus["targets"] {
    const p = this.lastPlan;
    return this.config.targets.map((t) => {
      const name = targetName(t);
      const tp = p?.targets.find((x) => x.name === name);
      const eff = effectiveMinIdle(t, now);
      return {
        name,
        labels: [...t.labels],
        waiting: tp?.waiting ?? 0,
        running: tp?.running ?? 0,
        idle: tp?.idle ?? null,
        in_flight: tp?.inFlight ?? 0,
        // With min_idle_auto, what the last pass planned with (schedule and arrival rate).
        min_idle: t.min_idle_auto && tp ? tp.minIdle : eff.minIdle,
        min_idle_period: eff.period ?? null,
        max_runners: t.max_runners ?? null,
        note: this.lastNotes.get(name) ?? null,
      };
    });
  }

  /** A problem for /readyz, or undefined. An instance that can never be served does not block readiness. */
  readiness(startupError: string | undefined): string | undefined {
    if (startupError) return undefined;
    if (this.lastSuccessAt !== undefined) return undefined;
    return `no successful reconcile yet${this.lastError ? `: ${this.lastError.message}` : ""}`;
  }
}
