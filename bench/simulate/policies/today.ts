import pino from "pino";
import { Actor } from "../../../src/autoscaler/act.js";
import { COUNTS_TOWARD_DEMAND_STATES, isOneOf } from "../../../src/api/states.js";
import { DispatcherClient } from "../../../src/autoscaler/dispatcher-client.js";
import type { DispatchBody, DispatchOutcome, DispatcherRunner } from "../../../src/autoscaler/dispatcher-types.js";
import { jobBaseKey } from "../../../src/autoscaler/keys.js";
import { observe } from "../../../src/autoscaler/observe.js";
import { isWaiting, plan } from "../../../src/autoscaler/plan.js";
import type { PlanTarget } from "../../../src/autoscaler/plan.js";
import { effectiveMinIdle } from "../../../src/autoscaler/schedule.js";
import { ArrivalLog, autoMinIdle } from "../../../src/autoscaler/auto-idle.js";
import { matchTarget } from "../../../src/autoscaler/match.js";
import { targetName, warmRetireBeforeMs } from "../../../src/config/autoscaler-schema.js";
import type { TargetConfig } from "../../../src/config/autoscaler-schema.js";
import { formatDuration, parseDuration } from "../../../src/config/duration.js";
import type { ActionRunJob, ActionRunner, ForgejoApi, ServerInfo } from "../../../src/forgejo/types.js";
import type { DispatcherModel } from "../dispatcher.js";
import type { Delivery, Forge } from "../forge.js";
import type { Policy, SimContext } from "./policy.js";

/** What GET /api/v1/version would make of a Forgejo 15: handles, runner list, jobs without labels. */
export const FORGEJO_15: ServerInfo = {
  kind: "forgejo",
  version: "15.0.0",
  major: 15,
  minor: 0,
  jobsApi: true,
  jobsWithoutLabels: true,
  runnersApi: true,
  jobHandles: true,
  listRunnersApi: true,
  workflowJobWebhook: false,
};

// The reconciler's constants (src/autoscaler/reconciler.ts): a follow-up pass 200 ms after an
// answer that changes the next plan, at most 5 in a row.
const FOLLOW_UP_MS = 200;
const MAX_FOLLOW_UPS = 5;

/** The autoscaler's dispatcher client, answered by the in-memory dispatcher instead of HTTP. */
class SimDispatcherClient extends DispatcherClient {
  constructor(private readonly model: DispatcherModel) {
    super({ url: "http://dispatcher.sim.invalid", timeoutMs: 1 });
  }

  override async dispatch(body: DispatchBody, key: string): Promise<DispatchOutcome> {
    const ttlMs = body.ttl === undefined ? undefined : parseDuration(body.ttl);
    return this.model.dispatch(key, { labels: body.labels, ttlMs, job: body.job });
  }

  override async listRunners(opts: { states: readonly string[] }): Promise<DispatcherRunner[]> {
    return this.model.list(opts.states);
  }

  override async cancel(name: string): Promise<{ ok: true }> {
    this.model.retire(name);
    return { ok: true };
  }
}

/** The two Forgejo calls a pass makes; the rest of the API is never used by observe(). */
function simForgejoApi(forge: Forge): ForgejoApi {
  const unused = (what: string) => () =>
    Promise.reject(new Error(`the simulated Forgejo does not implement ${what}; only searchJobs and listRunners are modelled`));
  return {
    serverInfo: async () => FORGEJO_15,
    searchJobs: async (): Promise<ActionRunJob[]> => forge.jobList(),
    listRunners: async (): Promise<ActionRunner[]> => forge.runnerList(),
    registrationToken: unused("registrationToken"),
    registerRunner: unused("registerRunner"),
    deleteRunner: unused("deleteRunner"),
    getRunner: unused("getRunner"),
    listHooks: unused("listHooks"),
    createHook: unused("createHook"),
    editHook: unused("editHook"),
    deleteHook: unused("deleteHook"),
  };
}

/**
 * `today`: the planner as it was before issue 13 item 3 (a pinned runner for every waiting job, warm
 * runners never stopped). `improved`: the product's planner as the daemon runs it (warm pools
 * shrink after warm_idle_timeout, idle runners retire warm_retire_before their deadline, pinned
 * runners only for jobs no free runner covers).
 */
export type PlannerMode = "today" | "improved" | "auto";

/**
 * The autoscaler on Forgejo 15: every pass is the real observe() → plan() → Actor.act() →
 * prune, as InstanceReconciler.pass runs it; the pass timing (poll_interval, a debounced pass per
 * delivery, follow-ups) is the reconciler's, re-created on the fake clock because the reconciler
 * itself uses real timers. Forgejo never stops polling.
 */
export class TodayPolicy implements Policy {
  private readonly actor: Actor;
  private readonly client: DispatcherClient;
  private readonly api: ForgejoApi;
  private timerAt: number | undefined;
  private timerToken = 0;
  private followUps = 0;

  constructor(
    private readonly ctx: SimContext,
    private readonly mode: PlannerMode = "today",
  ) {
    this.client = new SimDispatcherClient(ctx.dispatcher);
    this.api = simForgejoApi(ctx.forge);
    const config = ctx.deployment.autoscaler;
    this.actor = new Actor({
      instance: config.name,
      client: this.client,
      logger: pino({ level: "silent" }),
      now: () => new Date(ctx.q.now),
      bodyFor: (target) => {
        const t = config.targets.find((x) => targetName(x) === target);
        if (!t) throw new Error(`plan() produced an intent for target ${target}, which the simulated config does not have`);
        return { count: 1, labels: [...t.labels], scope: config.scope, ttl: t.ttl === undefined ? undefined : formatDuration(t.ttl) };
      },
    });
  }

  start(): void {
    this.schedule(0);
  }

  onDelivery(d: Delivery): void {
    // Forgejo sends no workflow_job; any delivery it does send (push, action_run_*) only makes the
    // next pass come sooner.
    if (d.event === "push" || d.event === "run_completed") this.schedule(this.ctx.deployment.debounceMs);
  }

  /** The reconciler's schedule(): one timer, moved only to run sooner. */
  private schedule(delayMs: number): void {
    const at = this.ctx.q.now + delayMs;
    if (this.timerAt !== undefined && this.timerAt <= at) return;
    this.timerAt = at;
    const token = ++this.timerToken;
    this.ctx.q.at(at, async () => {
      if (token !== this.timerToken) return;
      this.timerAt = undefined;
      await this.pass();
    });
  }

  private readonly arrivals = new ArrivalLog();

  /** EXPERIMENT (item 3c): a target with a scheduled pool sizes it from the arrival rate instead, at most its largest scheduled size. */
  private minIdle(t: TargetConfig, at: number): number {
    if (this.mode !== "auto" || t.min_idle_schedule.length === 0) return effectiveMinIdle(t, at).minIdle;
    const max = Math.max(t.min_idle, ...t.min_idle_schedule.map((p) => p.min_idle));
    return autoMinIdle(this.arrivals.arrivals(targetName(t)), at, { max, windowMs: 30 * 60_000, bootMs: 30_000 });
  }

  private targets(at: number): PlanTarget[] {
    return this.ctx.deployment.autoscaler.targets.map((t) => {
      const base = { name: targetName(t), labels: t.labels, minIdle: this.minIdle(t, at), maxRunners: t.max_runners };
      // The reconciler's planTargets(): the same keys, with the same defaults.
      return this.mode !== "today" ? { ...base, warmIdleTimeoutMs: t.warm_idle_timeout, warmRetireBeforeMs: warmRetireBeforeMs(t) } : base;
    });
  }

  private async pass(): Promise<void> {
    const config = this.ctx.deployment.autoscaler;
    const now = () => this.ctx.q.now;
    const obs = await observe({
      api: this.api,
      info: FORGEJO_15,
      dispatcher: this.client,
      scope: config.scope,
      targetLabels: config.targets.map((t) => t.labels),
      now: () => new Date(now()),
    });
    const jobs = obs.jobs ?? [];
    const targets = this.ctx.deployment.autoscaler.targets.map((t) => ({ name: targetName(t), labels: t.labels }));
    this.arrivals.note(
      jobs.filter(isWaiting).flatMap((j) => {
        const t = matchTarget(targets, j.runs_on);
        return t ? [{ id: j.id, target: t.name }] : [];
      }),
      now(),
      3_600_000,
    );
    const p = plan({
      instance: config.name,
      now: now(),
      observedAt: obs.observedAt,
      targets: this.targets(now()),
      jobs,
      handles: FORGEJO_15.jobHandles,
      registered: obs.registered,
      registeredFailed: obs.registered === undefined,
      inFlight: obs.inFlight,
      book: this.actor.book,
      warm: this.actor.warmState(),
      pinEveryJob: this.mode === "today",
      jobsComplete: this.mode !== "today",
    });
    const live = new Set(obs.inFlight.filter((r) => isOneOf(COUNTS_TOWARD_DEMAND_STATES, r.state)).map((r) => r.name));
    const result = await this.actor.act(p, live);
    this.actor.prune(new Set(jobs.filter(isWaiting).map((j) => jobBaseKey(config.name, j))));
    let delay: number | undefined;
    if (result.followUp && this.followUps < MAX_FOLLOW_UPS) {
      this.followUps++;
      delay = FOLLOW_UP_MS;
    } else if (!result.followUp) {
      this.followUps = 0;
    }
    this.schedule(Math.min(delay ?? Infinity, config.poll_interval));
  }
}
