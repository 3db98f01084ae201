import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Clock } from "../shared/clock.js";
import type { DispatcherClient } from "./dispatcher-client.js";
import type { DispatchBody, DispatchOutcome } from "./dispatcher-types.js";
import { TERMINAL_STATES, isOneOf } from "../api/states.js";
import type { KeyRecord } from "./keys.js";
import type { Cancel, Intent, JobState, Plan } from "./plan.js";

export interface ActorOptions {
  instance: string;
  client: DispatcherClient;
  logger: Logger;
  now: Clock;
  /** The request body for a target, without `job` (the actor adds it for pinned intents). */
  bodyFor: (target: string) => Omit<DispatchBody, "job">;
  /** Attempts per request within one pass (network errors, 5xx); the next pass tries again. */
  attempts?: number;
  /** First pause between attempts; doubles each time. */
  retryBaseMs?: number;
}

export interface JobOutcome {
  state: JobState;
  reason: string;
}

export interface ActResult {
  attempted: number;
  created: number;
  duplicates: number;
  rejected: number;
  failed: number;
  /** The dispatcher could not be reached; the remaining intents were left for the next pass. */
  dispatcherDown: boolean;
  /** The dispatcher asked us to wait (429 Retry-After). */
  retryAfterMs?: number | undefined;
  /** An answer changed what the next plan will decide: run another pass soon. */
  followUp: boolean;
  /** What happened to each job's intent, for status. */
  jobs: Map<number, JobOutcome>;
  /** Last error per target for warm-pool requests (and stopping idle runners). */
  warmErrors: Map<string, string>;
  /** Idle runners stopped at the dispatcher in this pass. */
  cancelled: number;
  lastError?: string | undefined;
}

/** Per kind of cancel: the reason sent to the dispatcher, and the log message. */
const CANCEL_WORDS: Record<Cancel["kind"], [string, string]> = {
  retire: ["warm runner retired", "idle runner retired before its deadline"],
  shrink: ["warm pool shrunk", "idle runner stopped: warm pool above its size"],
  unneeded: ["job taken by another runner", "pending pinned runner stopped: its job is no longer waiting"],
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Turns intents into dispatcher requests. Every request carries its key, so asking twice launches
 * once; the answers go into the key book the planner reads. Failed requests are retried a few times
 * here, then left to the next pass, which recomputes intents from the level-triggered truth and
 * reuses the same keys — an intent is never lost because the dispatcher was briefly away.
 */
export class Actor {
  /** Per job base key, what the dispatcher last said. */
  readonly book = new Map<string, KeyRecord>();
  readonly boot = randomBytes(3).toString("hex");
  private warmSeq = 0;
  private outstandingWarm = new Map<string, string[]>();
  private readonly inProgress = new Map<string, Promise<DispatchOutcome>>();

  constructor(private readonly opts: ActorOptions) {}

  warmState(): { boot: string; nextSeq: number; outstanding: ReadonlyMap<string, readonly string[]> } {
    return { boot: this.boot, nextSeq: this.warmSeq, outstanding: this.outstandingWarm };
  }

  /** Forgets keys of jobs that are no longer waiting (called after a successful jobs observation). */
  prune(waitingBaseKeys: ReadonlySet<string>): void {
    for (const k of this.book.keys()) if (!waitingBaseKeys.has(k)) this.book.delete(k);
  }

  /** One request, shared with anyone asking for the same key at the same time, retried on transient failure. */
  post(key: string, body: DispatchBody): Promise<DispatchOutcome> {
    const running = this.inProgress.get(key);
    if (running) return running;
    const p = this.postWithRetry(key, body).finally(() => this.inProgress.delete(key));
    this.inProgress.set(key, p);
    return p;
  }

  private async postWithRetry(key: string, body: DispatchBody): Promise<DispatchOutcome> {
    const attempts = this.opts.attempts ?? 3;
    const base = this.opts.retryBaseMs ?? 200;
    let outcome: DispatchOutcome = { kind: "unavailable", status: 0, message: "not attempted" };
    for (let i = 0; i < attempts; i++) {
      outcome = await this.opts.client.dispatch(body, key);
      if (outcome.kind !== "unavailable") return outcome;
      // The dispatcher told us when to come back: that is the next pass's business.
      if (outcome.retryAfterMs !== undefined) return outcome;
      if (i < attempts - 1) await sleep(base * 2 ** i);
    }
    return outcome;
  }

  async act(plan: Plan, observedLive: ReadonlySet<string>): Promise<ActResult> {
    const result: ActResult = {
      attempted: 0,
      created: 0,
      duplicates: 0,
      rejected: 0,
      failed: 0,
      dispatcherDown: false,
      followUp: false,
      jobs: new Map(),
      warmErrors: new Map(),
      cancelled: 0,
    };
    const keepWarm = new Map<string, string[]>();

    // Stop idle runners first: a retired runner's replacement is among the intents below, and the
    // dispatcher's own caps count the old one until it is gone.
    for (const c of plan.cancels) await this.cancelIdle(c, result);

    for (const intent of plan.intents) {
      if (result.dispatcherDown) {
        this.leaveForLater(intent, keepWarm, result, "dispatcher unreachable; will ask again");
        continue;
      }
      const body: DispatchBody = { ...this.opts.bodyFor(intent.target), count: 1 };
      if (intent.job) body.job = { id: intent.job.id, attempt: intent.job.attempt, handle: intent.job.handle };
      result.attempted++;
      const outcome = await this.post(intent.key, body);
      const at = this.opts.now().getTime();
      if (outcome.kind === "created" || outcome.kind === "duplicate") this.recordAnswered(intent, outcome, at, observedLive, result);
      else if (outcome.kind === "rejected") this.recordRejected(intent, outcome, at, result);
      else this.recordFailed(intent, outcome, keepWarm, result);
    }

    this.outstandingWarm = keepWarm;
    this.warmSeq += plan.warmSeqUsed;
    return result;
  }

  /** Stops one idle runner, if it is still idle (if_idle: the dispatcher asks Forgejo once more). */
  private async cancelIdle(c: Cancel, result: ActResult): Promise<void> {
    const log = this.opts.logger;
    // if_idle: a runner that took a job since Forgejo was asked is never stopped (the dispatcher looks again).
    const r = await this.opts.client.cancel(c.runner, `${CANCEL_WORDS[c.kind][0]}: ${c.reason}`, { ifIdle: true });
    if (r.ok) {
      result.cancelled++;
      log.info(
        { instance: this.opts.instance, runner: c.runner, target: c.target, kind: c.kind, reason: c.reason },
        CANCEL_WORDS[c.kind][1],
      );
    } else if (r.busy) {
      log.info({ instance: this.opts.instance, runner: c.runner, target: c.target, kind: c.kind }, r.message);
    } else {
      result.warmErrors.set(c.target, r.message);
      log.warn(
        { instance: this.opts.instance, runner: c.runner, target: c.target, err: r.message },
        "stopping an idle runner failed; will try again",
      );
    }
  }

  /** The dispatcher created the runner, or already had the key: book it and say what the job's intent came to. */
  private recordAnswered(
    intent: Intent,
    outcome: Extract<DispatchOutcome, { kind: "created" | "duplicate" }>,
    at: number,
    observedLive: ReadonlySet<string>,
    result: ActResult,
  ): void {
    const log = this.opts.logger;
    const names = outcome.response.runners.map((r) => r.name);
    const live = outcome.response.runners.filter((r) => !isOneOf(TERMINAL_STATES, r.state));
    if (outcome.kind === "created") {
      result.created++;
      log.info(
        { instance: this.opts.instance, key: intent.key, target: intent.target, job: intent.forJob, runners: names },
        "runner requested",
      );
    } else {
      result.duplicates++;
      log.debug({ instance: this.opts.instance, key: intent.key, runners: names }, "dispatcher already had this key");
    }
    if (intent.baseKey === undefined) return;
    const status: KeyRecord["status"] = outcome.kind === "created" ? "created" : live.length > 0 ? "live" : "terminal";
    this.book.set(intent.baseKey, { gen: intent.gen ?? 0, status, at, runners: names });
    // A duplicate whose runner this pass already counted, or that has ended, changes the
    // next plan (another job's key, or the next generation): look again soon.
    if (outcome.kind === "duplicate" && (live.length === 0 || live.some((r) => observedLive.has(r.name)))) result.followUp = true;
    if (intent.forJob !== undefined) {
      const first = live[0] ?? outcome.response.runners[0];
      result.jobs.set(intent.forJob, {
        state: live.length > 0 ? "in_flight" : "backoff",
        reason:
          outcome.kind === "created"
            ? `runner ${names.join(", ")} requested`
            : first
              ? `runner ${first.name} ${first.state}${live.length ? "" : "; looking again"}`
              : "dispatcher reports no runner for this key; looking again",
      });
    }
  }

  /** The dispatcher refused the request: book the refusal (job intents) or note it for the warm target. */
  private recordRejected(intent: Intent, outcome: Extract<DispatchOutcome, { kind: "rejected" }>, at: number, result: ActResult): void {
    result.rejected++;
    result.lastError = outcome.message;
    this.opts.logger.warn(
      { instance: this.opts.instance, key: intent.key, target: intent.target, status: outcome.status, err: outcome.message },
      "dispatcher refused a runner request",
    );
    if (intent.baseKey !== undefined) {
      this.book.set(intent.baseKey, { gen: intent.gen ?? 0, status: "rejected", at, runners: [], message: outcome.message });
      if (intent.forJob !== undefined) result.jobs.set(intent.forJob, { state: "refused", reason: outcome.message });
    } else {
      result.warmErrors.set(intent.target, outcome.message);
    }
  }

  /** The request failed (after postWithRetry's attempts): keep the key for the next pass; no answer at all means the dispatcher is down. */
  private recordFailed(
    intent: Intent,
    outcome: Extract<DispatchOutcome, { kind: "unavailable" }>,
    keepWarm: Map<string, string[]>,
    result: ActResult,
  ): void {
    result.failed++;
    result.lastError = outcome.message;
    if (outcome.retryAfterMs !== undefined) result.retryAfterMs = Math.max(result.retryAfterMs ?? 0, outcome.retryAfterMs);
    if (outcome.status === 0) result.dispatcherDown = true;
    this.opts.logger.warn(
      { instance: this.opts.instance, key: intent.key, target: intent.target, status: outcome.status, err: outcome.message },
      "runner request failed; will retry",
    );
    this.leaveForLater(intent, keepWarm, result, `dispatcher error: ${outcome.message}; retrying`);
  }

  /** Keeps the intent's key so the next attempt is deduplicated with this one if it did land. */
  private leaveForLater(intent: Intent, keepWarm: Map<string, string[]>, result: ActResult, reason: string): void {
    if (intent.baseKey !== undefined) {
      const prev = this.book.get(intent.baseKey);
      // Keep a known runner list: an error on the retry of a live key says nothing new about it.
      this.book.set(intent.baseKey, {
        gen: intent.gen ?? 0,
        status: "error",
        at: this.opts.now().getTime(),
        runners: prev && prev.gen === intent.gen ? prev.runners : [],
        message: reason,
      });
      if (intent.forJob !== undefined) result.jobs.set(intent.forJob, { state: "dispatch", reason });
    } else {
      keepWarm.set(intent.target, [...(keepWarm.get(intent.target) ?? []), intent.key]);
      result.warmErrors.set(intent.target, reason);
    }
  }
}
