import type { Logger } from "pino";
import type { InstanceConfig } from "../config/autoscaler-schema.js";
import { targetName, warmRetireBeforeMs } from "../config/autoscaler-schema.js";
import { formatDuration } from "../config/duration.js";
import { scopeKey } from "../forgejo/scope.js";
import type { ActionRunJob, ForgejoApi, ServerInfo } from "../forgejo/types.js";
import { describeServer } from "../forgejo/version.js";
import type { Metrics } from "../http/metrics.js";
import { Actor } from "./act.js";
import { ArrivalLog, autoMinIdle } from "./auto-idle.js";
import { matchTarget } from "./match.js";
import type { ActResult } from "./act.js";
import { LIVE_STATES } from "./capacity.js";
import type { DispatcherClient } from "./dispatcher-client.js";
import type { DispatchBody } from "./dispatcher-types.js";
import { jobBaseKey } from "./keys.js";
import { canListRunners, observe, pollingImpossible, webhooksOnly } from "./observe.js";
import { plan, isWaiting } from "./plan.js";
import type { Plan, PlanTarget } from "./plan.js";
import { effectiveMinIdle } from "./schedule.js";
import type { InstanceStatus, Mode, WaitingJobStatus } from "./status.js";

export interface ReconcilerOptions {
  config: InstanceConfig;
  api: ForgejoApi;
  dispatcher: DispatcherClient;
  logger: Logger;
  metrics: Metrics;
  now?: () => number;
  /** Deliveries within this window cause one pass. */
  debounceMs?: number;
  /** Overrides config.poll_interval / resync_interval (tests). */
  pollIntervalMs?: number;
  resyncIntervalMs?: number;
  /** First and largest pause between attempts to reach Forgejo at start. */
  detectRetryMs?: { first: number; max: number };
  /** Pauses between attempts of one dispatcher request inside a pass. */
  dispatchRetryBaseMs?: number;
}

/** Gitea workflow_job payload fields the autoscaler reads. */
export interface WorkflowJobEvent {
  action: string;
  id: number;
  attempt?: number | undefined;
  labels: string[];
}

const FOLLOW_UP_MS = 200;
const REDETECT_MS = 10 * 60_000;
const MAX_FOLLOW_UPS = 5;
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * One Forgejo instance: detect what the server can do, then observe → plan → act on a timer and
 * whenever a webhook says something changed. Passes never overlap; a request during a pass runs
 * one more pass right after it.
 *
 * Modes: "polling" passes every poll_interval. On Gitea, once a valid workflow_job delivery has
 * been processed, "resync" passes every resync_interval (or, with resync_interval 0, "webhooks":
 * no timer at all, the original behaviour). Forgejo sends no workflow_job, so it never stops polling.
 */
export class InstanceReconciler {
  readonly name: string;
  readonly actor: Actor;
  info: ServerInfo | undefined;
  startupError: string | undefined;
  mode: Mode = "polling";
  /** Why the mode is what it is when the operator did not choose it (Gitea 1.24: webhooks only). */
  private modeReason: string | undefined;

  private readonly now: () => number;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly resyncMs: number;
  private readonly debounceMs: number;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private detectTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private errorStreak = 0;
  private followUps = 0;
  private pendingSwitch = false;
  private readonly hints = new Map<number, { job: ActionRunJob; at: number }>();
  private resolveInfo!: (info: ServerInfo) => void;
  private readonly infoReady = new Promise<ServerInfo>((resolve) => {
    this.resolveInfo = resolve;
  });

  private lastPollAt: number | undefined;
  private lastSuccessAt: number | undefined;
  private lastError: { at: number; message: string } | undefined;
  private lastPlan: Plan | undefined;
  private lastAct: ActResult | undefined;
  private lastPeriods = new Map<string, number | undefined>();
  /** When jobs were first seen waiting, per target, for min_idle_auto. */
  private readonly arrivals = new ArrivalLog();
  private lastNotes = new Map<string, string>();
  private lastWaiting: WaitingJobStatus[] = [];
  private webhookState: { setup: "ok" | "pending" | "error" | "not_configured"; message: string | null } = { setup: "not_configured", message: null };
  private lastDelivery: { at: number; event: string } | undefined;
  private workflowJobSeen = false;
  private passes = 0;
  private infoAt = performance.now();

  constructor(private readonly opts: ReconcilerOptions) {
    const c = opts.config;
    this.name = c.name;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger.child({ instance: c.name });
    this.pollMs = opts.pollIntervalMs ?? c.poll_interval;
    this.resyncMs = opts.resyncIntervalMs ?? c.resync_interval;
    this.debounceMs = opts.debounceMs ?? 1000;
    if (c.webhook) this.webhookState = { setup: "pending", message: null };
    this.actor = new Actor({
      instance: c.name,
      client: opts.dispatcher,
      logger: this.log,
      now: this.now,
      bodyFor: (t) => this.bodyFor(t),
      retryBaseMs: opts.dispatchRetryBaseMs,
    });
  }

  /** Number of completed passes (tests wait on it). */
  get passCount(): number {
    return this.passes;
  }

  private bodyFor(target: string): Omit<DispatchBody, "job"> {
    const t = this.opts.config.targets.find((x) => targetName(x) === target);
    if (!t) throw new Error(`unknown target ${target}`);
    const body: Omit<DispatchBody, "job"> = { count: 1, labels: [...t.labels], scope: this.opts.config.scope };
    if (t.ttl !== undefined) body.ttl = formatDuration(t.ttl);
    if (t.machine_type) body.machine_type = t.machine_type;
    if (t.image) body.image = t.image;
    if (Object.keys(t.env).length > 0) body.env = { ...t.env };
    return body;
  }

  /** Starts detection in the background; it retries until Forgejo answers. */
  start(): void {
    void this.detect(this.opts.detectRetryMs?.first ?? 1000);
  }

  private async detect(delay: number): Promise<void> {
    if (this.stopped) return;
    try {
      this.info = await this.opts.api.serverInfo();
    } catch (err) {
      const max = this.opts.detectRetryMs?.max ?? 60_000;
      this.lastError = { at: this.now(), message: `cannot read the server version: ${errText(err)}` };
      this.log.warn({ err: errText(err), retryInMs: delay }, "Forgejo is not reachable yet; retrying in the background");
      this.detectTimer = setTimeout(() => void this.detect(Math.min(delay * 2, max)), delay);
      return;
    }
    const info = this.info;
    this.infoAt = performance.now();
    this.resolveInfo(info);
    const impossible = pollingImpossible(info);
    if (impossible) {
      this.startupError = impossible;
      this.log.error({ server: describeServer(info) }, impossible);
      return;
    }
    const c = this.opts.config;
    const onlyWebhooks = webhooksOnly(info);
    if (info.kind === "forgejo") {
      this.mode = "polling";
      if (c.disable_polling) {
        this.log.warn("disable_polling is ignored: Forgejo sends no workflow_job webhooks, so it is always polled (webhooks only make a reconcile happen sooner)");
      }
    } else if (onlyWebhooks) {
      this.mode = "webhooks";
      this.modeReason = onlyWebhooks;
      this.log.warn({ server: describeServer(info) }, onlyWebhooks);
    } else if (c.disable_polling) {
      this.mode = this.resyncMs > 0 ? "resync" : "webhooks";
    }
    this.lastError = undefined;
    this.log.info({ server: describeServer(info), mode: this.mode, handles: info.jobHandles }, "watching instance");
    this.schedule(0);
  }

  /** Resolves with the ServerInfo once Forgejo has answered (webhook setup waits for it). */
  serverInfo(): Promise<ServerInfo> {
    return this.infoReady;
  }

  setWebhookState(setup: "ok" | "pending" | "error", message: string | null): void {
    this.webhookState = { setup, message };
  }

  /** A valid delivery that is not a Gitea workflow_job: look again soon (debounced). */
  onDelivery(event: string): void {
    this.lastDelivery = { at: this.now(), event };
    this.requestPass(this.debounceMs);
  }

  /**
   * A Gitea workflow_job delivery. queued: a pass now, with the job as a hint. Gitea's "waiting"
   * is its internal *blocked* (needs, approval; docs/upstream-contracts.md#gitea-differences): no
   * runner could take the job yet, so it only makes the next look sooner; "queued" follows once it
   * can run.
   */
  onWorkflowJob(e: WorkflowJobEvent): void {
    this.lastDelivery = { at: this.now(), event: `workflow_job.${e.action}` };
    if (this.info?.kind !== "forgejo") {
      this.workflowJobSeen = true;
      if (this.mode === "polling") this.pendingSwitch = true;
    }
    if (e.action === "queued") {
      this.hints.set(e.id, { job: { id: e.id, attempt: e.attempt, runs_on: e.labels, status: "waiting" }, at: this.now() });
      this.requestPass(0);
    } else {
      this.hints.delete(e.id);
      // completed: a runner was used up, refill the warm pool; in_progress: counts changed.
      this.requestPass(e.action === "completed" ? 0 : this.debounceMs);
    }
  }

  /** Runs a pass after `delayMs` unless one is already due sooner. */
  requestPass(delayMs: number): void {
    if (this.stopped || !this.info || this.startupError) return;
    this.schedule(delayMs);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    const at = this.now() + delayMs;
    if (this.timer && this.timerAt !== undefined && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = undefined;
      this.kick();
    }, Math.max(0, delayMs));
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err) => this.log.error({ err: errText(err) }, "reconcile pass failed unexpectedly"))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.schedule(0);
        }
      });
  }

  private regularDelay(): number | undefined {
    if (this.mode === "polling") return this.pollMs;
    if (this.mode === "resync") return this.resyncMs;
    return undefined;
  }

  private retryDelay(): number {
    const cap = this.mode === "polling" ? this.pollMs : 60_000;
    return Math.min(1000 * 2 ** Math.max(0, this.errorStreak - 1), cap);
  }

  private fail(message: string): void {
    this.errorStreak++;
    this.lastError = { at: this.now(), message };
    this.log.warn({ err: message }, "reconcile pass incomplete");
  }

  private planTargets(at: number): PlanTarget[] {
    return this.opts.config.targets.map((t) => {
      const eff = effectiveMinIdle(t, at);
      const name = targetName(t);
      const auto = t.min_idle_auto;
      if (auto) eff.minIdle = Math.max(eff.minIdle, autoMinIdle(this.arrivals.arrivals(name), at, { max: auto.max, windowMs: auto.window, bootMs: auto.boot_time }));
      if (this.lastPeriods.get(name) !== eff.period) {
        if (this.lastPeriods.has(name)) this.log.info({ target: name, minIdle: eff.minIdle, period: eff.period ?? null }, "warm pool size changed by schedule");
        this.lastPeriods.set(name, eff.period);
      }
      return { name, labels: t.labels, minIdle: eff.minIdle, maxRunners: t.max_runners, warmIdleTimeoutMs: t.warm_idle_timeout, warmRetireBeforeMs: warmRetireBeforeMs(t) };
    });
  }

  /** Jobs seen waiting for the first time count as arrivals of their target (min_idle_auto). */
  private noteArrivals(jobs: readonly ActionRunJob[]): void {
    const targets = this.opts.config.targets.map((t) => ({ name: targetName(t), labels: t.labels }));
    const keep = Math.max(3_600_000, ...this.opts.config.targets.map((t) => t.min_idle_auto?.window ?? 0));
    const seen = jobs.filter(isWaiting).flatMap((j) => {
      const t = matchTarget(targets, j.runs_on);
      return t ? [{ id: j.id, target: t.name }] : [];
    });
    this.arrivals.note(seen, this.now(), keep);
  }

  /** Forgejo may be upgraded under us (14 → 15 brings handles): look at the version again now and then. */
  private async refreshInfo(): Promise<void> {
    if (performance.now() - this.infoAt < REDETECT_MS) return;
    this.infoAt = performance.now();
    try {
      const info = await this.opts.api.serverInfo();
      if (info.version !== this.info?.version) this.log.info({ server: describeServer(info), before: this.info?.version }, "server version changed");
      if (!pollingImpossible(info)) this.info = info;
    } catch {
      // The pass reports Forgejo trouble itself; keep what we knew.
    }
  }

  private async pass(): Promise<void> {
    await this.refreshInfo();
    const info = this.info;
    if (!info) return;
    const started = this.now();
    const wall = performance.now();
    this.lastPollAt = started;
    const c = this.opts.config;
    let delay: number | undefined;
    try {
      let obs;
      try {
        obs = await observe({
          api: this.opts.api,
          info,
          dispatcher: this.opts.dispatcher,
          scope: c.scope,
          targetLabels: c.targets.map((t) => t.labels),
          now: this.now,
        });
      } catch (err) {
        this.fail(errText(err));
        delay = this.retryDelay();
        return;
      }

      let jobs = obs.jobs;
      if (webhooksOnly(info)) {
        // Nothing to poll: the jobs are what workflow_job deliveries announced and nothing retired.
        const keep = Math.max(10 * this.pollMs, 600_000);
        for (const [id, h] of this.hints) if (started - h.at >= keep) this.hints.delete(id);
        jobs = [...this.hints.values()].map((h) => h.job);
      } else if (!jobs) {
        // Forgejo is away: serve what webhooks told us, nothing else (no warm-pool changes).
        const keep = Math.max(10 * this.pollMs, 600_000);
        for (const [id, h] of this.hints) if (started - h.at >= keep) this.hints.delete(id);
        const hinted = [...this.hints.values()].map((h) => h.job);
        if (hinted.length === 0) {
          this.fail(`jobs: ${obs.jobsError ?? "unknown error"}`);
          delay = this.retryDelay();
          return;
        }
        jobs = hinted;
      } else {
        for (const [id, h] of this.hints) if (h.at <= obs.observedAt) this.hints.delete(id);
      }

      if (obs.jobs) this.noteArrivals(obs.jobs);
      const targets = this.planTargets(this.now());
      const listRunners = canListRunners(info);
      const p = plan({
        instance: c.name,
        now: this.now(),
        observedAt: obs.observedAt,
        // Without the job list nothing is known about what idle runners are about to take: no warm-pool changes.
        targets: obs.jobs ? targets : targets.map((t) => ({ ...t, minIdle: 0, warmIdleTimeoutMs: undefined, warmRetireBeforeMs: undefined })),
        jobs,
        handles: info.jobHandles,
        registered: obs.registered,
        registeredFailed: listRunners && obs.registered === undefined,
        inFlight: obs.inFlight,
        book: this.actor.book,
        warm: this.actor.warmState(),
        jobsComplete: obs.jobs !== undefined && !webhooksOnly(info),
      });
      const live = new Set(obs.inFlight.filter((r) => LIVE_STATES.has(r.state)).map((r) => r.name));
      const result = await this.actor.act(p, live);
      this.lastPlan = p;
      this.lastAct = result;
      this.recordStatus(p, result, obs.jobs === undefined ? obs.jobsError : undefined);

      if (obs.jobs) {
        this.actor.prune(new Set(obs.jobs.filter(isWaiting).map((j) => jobBaseKey(c.name, j))));
      }

      const problems = [
        obs.jobsError ? `jobs: ${obs.jobsError}` : undefined,
        obs.registeredError ? `runners: ${obs.registeredError}` : undefined,
        result.failed > 0 ? `dispatcher: ${result.lastError}` : undefined,
      ].filter((x): x is string => x !== undefined);
      if (problems.length > 0) {
        this.fail(problems.join("; "));
        delay = result.retryAfterMs ?? this.retryDelay();
      } else {
        // The failure was warned about once (repeats go to debug): say when it is over.
        if (this.errorStreak > 0) this.log.info({ failedPasses: this.errorStreak }, "reconcile pass complete again");
        this.errorStreak = 0;
        this.lastError = result.rejected > 0 ? { at: this.now(), message: result.lastError ?? "dispatcher refused a request" } : undefined;
        this.lastSuccessAt = this.now();
        this.opts.metrics.lastReconcile.set({ forge: c.name }, Date.now() / 1000);
        if (this.pendingSwitch) {
          this.pendingSwitch = false;
          // Forgejo never stops polling, even if something sent a workflow_job-shaped delivery.
          if (this.mode === "polling" && info.kind !== "forgejo") {
            this.mode = this.resyncMs > 0 ? "resync" : "webhooks";
            this.log.info({ mode: this.mode, resyncInterval: this.resyncMs }, "workflow_job webhooks are arriving; polling stops");
          }
        }
      }
      if (result.followUp && this.followUps < MAX_FOLLOW_UPS) {
        this.followUps++;
        delay = Math.min(delay ?? FOLLOW_UP_MS, FOLLOW_UP_MS);
      } else if (!result.followUp) {
        this.followUps = 0;
      }
    } finally {
      this.passes++;
      this.opts.metrics.reconcileDuration.observe({ forge: c.name }, (performance.now() - wall) / 1000);
      const regular = this.regularDelay();
      const next = [delay, regular].filter((d): d is number => d !== undefined);
      if (next.length > 0) this.schedule(Math.min(...next));
    }
  }

  private recordStatus(p: Plan, result: ActResult, jobsError: string | undefined): void {
    const m = this.opts.metrics;
    const name = this.opts.config.name;
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

  status(): InstanceStatus {
    const c = this.opts.config;
    const info = this.info;
    const p = this.lastPlan;
    return {
      name: c.name,
      base_url: c.forgejo.base_url,
      scope: scopeKey(c.scope),
      server: info ? { kind: info.kind, version: info.version, job_handles: info.jobHandles, runner_list: canListRunners(info) } : null,
      mode: this.mode,
      mode_reason: this.modeReason ?? null,
      startup_error: this.startupError ?? null,
      last_poll_at: iso(this.lastPollAt),
      last_success_at: iso(this.lastSuccessAt),
      last_error: this.lastError ? { at: new Date(this.lastError.at).toISOString(), message: this.lastError.message } : null,
      next_poll_at: iso(this.timerAt),
      webhook: {
        configured: c.webhook !== undefined,
        setup: this.webhookState.setup,
        message: this.webhookState.message,
        last_delivery_at: iso(this.lastDelivery?.at),
        last_delivery_event: this.lastDelivery?.event ?? null,
        workflow_job_seen: this.workflowJobSeen,
      },
      targets: c.targets.map((t) => {
        const name = targetName(t);
        const tp = p?.targets.find((x) => x.name === name);
        const eff = effectiveMinIdle(t, this.now());
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
      }),
      waiting_jobs: this.lastWaiting,
    };
  }

  /** A problem for /readyz, or undefined. An instance that can never be served does not block readiness. */
  readiness(): string | undefined {
    if (this.startupError) return undefined;
    if (this.lastSuccessAt !== undefined) return undefined;
    return `no successful reconcile yet${this.lastError ? `: ${this.lastError.message}` : ""}`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.detectTimer) clearTimeout(this.detectTimer);
    this.timer = undefined;
    this.timerAt = undefined;
    await this.running;
  }

  /** For tests and status: the last plan and act result. */
  get last(): { plan: Plan | undefined; act: ActResult | undefined } {
    return { plan: this.lastPlan, act: this.lastAct };
  }
}
