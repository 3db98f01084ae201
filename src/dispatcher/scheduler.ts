import { scopeKey } from "../forgejo/scope.js";
import { isNotLeader } from "../ha/gate.js";
import { StateUnavailableError } from "../store/errors.js";
import { INSTANCE_HOLDING_STATES } from "../api/states.js";
import type { RunnerRecord } from "../store/types.js";
import { admit } from "./caps.js";
import { errorMessage } from "../shared/error-message.js";
import { SingleFlight } from "../shared/single-flight.js";
import type { DispatcherContext } from "./context.js";
import { isActing } from "./context.js";
import { launchRunner } from "./launch.js";

/**
 * Moves pending runners to launching, in order, under the caps and at most
 * `namespace.max_parallel` launches at a time. Launch concurrency bounds process spawns, not
 * running jobs: a slot is free again as soon as an instance is up.
 */
export class Scheduler {
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Runners this pass is moving to launching: theirs until their launch is in flight. */
  private readonly claiming = new Set<string>();
  private readonly notBefore = new Map<string, number>();
  /** Ends launches' waits (for the state database, for a look at Namespace) at shutdown. */
  private readonly stopping = new AbortController();
  /** Passes never overlap; a request during one causes exactly one more. */
  private readonly passes: SingleFlight;
  private stopped = false;
  private timers = new Set<NodeJS.Timeout>();

  constructor(private readonly ctx: DispatcherContext) {
    this.passes = new SingleFlight(
      () => this.pass(),
      (err) =>
        // The store already reported an outage once; the next pass retries. A write the lease's
        // fence refused: the lease is lost, which the lease reports; the holder's next pass does it.
        ctx.logger[err instanceof StateUnavailableError || isNotLeader(err) ? "debug" : "error"](
          { err: errorMessage(err) },
          "scheduling pass failed; retrying on the next tick",
        ),
    );
    // A runner that ends frees capacity: admit the next one now rather than on the next tick.
    ctx.records.onChange((r) => {
      if (r.state === "done" || r.state === "failed") this.kick();
    });
  }

  /**
   * Whether this process is launching the runner (or about to): a `launching` record for which
   * this is false was left by a launch that stopped without recording its outcome.
   */
  isLaunching(name: string): boolean {
    return this.inFlight.has(name) || this.claiming.has(name);
  }

  /** Whether an admission pass is running. */
  get passing(): boolean {
    return this.passes.busy;
  }

  get launchesInFlight(): number {
    return this.inFlight.size;
  }

  /** Requests a pass; passes never overlap and a request during one causes exactly one more. */
  kick(): void {
    // Only the replica holding the lease launches; the others accept and record (DESIGN principle 8).
    if (!isActing(this.ctx)) return;
    this.passes.kick();
  }

  /** One admission pass; exported for tests that drive the scheduler step by step. */
  async pass(): Promise<void> {
    const { ctx } = this;
    const now = ctx.now().getTime();
    const pending = await ctx.records.store.listRunners({ states: ["pending"] });
    const eligible: RunnerRecord[] = [];
    for (const r of pending) {
      if (now >= Date.parse(r.queueDeadline)) {
        await ctx.records.transition(r, ["pending"], "failed", `not launched within dispatcher.queue_timeout; last reason: ${r.reason}`, {
          finishedAt: new Date(now).toISOString(),
        });
        continue;
      }
      if ((this.notBefore.get(r.name) ?? 0) > now) continue;
      eligible.push(r);
    }
    if (eligible.length === 0) return;
    // Caps count runners, never their histories: read without them.
    const live = await ctx.records.store.listRunnersWithoutHistory({ states: INSTANCE_HOLDING_STATES });
    const { admit: admitted, waiting } = admit(
      eligible,
      live,
      { maxRunners: ctx.config.namespace.max_runners, caps: ctx.config.dispatcher.caps },
      (r) => scopeKey(r.scope),
    );
    const slots = Math.max(0, ctx.config.namespace.max_parallel - this.inFlight.size);
    admitted
      .slice(slots)
      .forEach((r) =>
        waiting.set(r.name, `waiting for a launch slot: namespace.max_parallel=${ctx.config.namespace.max_parallel} launches in progress`),
      );
    for (const r of eligible) {
      const reason = waiting.get(r.name);
      if (reason && reason !== r.reason) await ctx.records.update(r.name, { reason });
    }
    for (const r of admitted.slice(0, slots)) {
      if (this.stopped || !isActing(ctx)) return;
      this.claiming.add(r.name);
      try {
        const attempt = r.launchAttempts + 1;
        const launching = await ctx.records.transition(
          r,
          ["pending"],
          "launching",
          `launch slot acquired (attempt ${attempt}/${ctx.config.dispatcher.launch_attempts})`,
          { launchAttempts: attempt },
        );
        if (launching) this.start(launching);
      } finally {
        this.claiming.delete(r.name);
      }
    }
  }

  /** Runs a launch in the background; the HTTP request that caused it never owns it. */
  start(r: RunnerRecord): void {
    this.notBefore.delete(r.name);
    const p = launchRunner(this.ctx, r, this.stopping.signal)
      .then((outcome) => {
        if (outcome.kind === "retry") this.retryLater(r.name, outcome.delayMs);
      })
      .catch((err) =>
        this.ctx.logger.error(
          { runner: r.name, err: errorMessage(err) },
          "launch crashed unexpectedly; the supervisor settles the runner on its next tick",
        ),
      )
      .finally(() => {
        this.inFlight.delete(r.name);
        this.kick();
      });
    this.inFlight.set(r.name, p);
  }

  private retryLater(name: string, delayMs: number): void {
    this.notBefore.set(name, this.ctx.now().getTime() + delayMs);
    const t = setTimeout(() => {
      this.timers.delete(t);
      // The delay has passed: a timer may fire a millisecond before the wall clock says so, and a pass
      // that compared the two would skip the runner with nothing left to wake it.
      this.notBefore.delete(name);
      this.kick();
    }, delayMs);
    t.unref();
    this.timers.add(t);
  }

  /** Stops admitting; waits up to `timeoutMs` for launches in progress. True if all finished. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.stopped = true;
    this.passes.stop();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.inFlight.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const all = Promise.allSettled([...this.inFlight.values()]).then(() => true as const);
    const done = await Promise.race([all, timeout]);
    clearTimeout(timer);
    // Launches still waiting for the state database or for a look at Namespace give up now; their
    // runners stay launching and the next start settles them.
    this.stopping.abort();
    return done;
  }
}
