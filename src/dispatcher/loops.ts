import { isNotLeader } from "../ha/gate.js";
import type { Lease, LeaseChange } from "../ha/lease.js";
import type { Store } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";
import { recover } from "./recovery.js";
import type { RegistrationSweep } from "./registration-sweep.js";
import type { Scheduler } from "./scheduler.js";
import type { Supervisor } from "./supervisor.js";

export interface ActingLoopsDeps {
  ctx: DispatcherContext;
  /** Where pruning writes: the acting records' store (fenced by the lease, with replicas). */
  store: Store;
  scheduler: Scheduler;
  supervisor: Supervisor;
  sweep: RegistrationSweep;
  lease: Lease;
  /** False: tests drive ticks by hand. */
  timers: boolean;
}

/**
 * The work that happens once among replicas, run while this replica holds the lease: recovery when
 * it gains it (at start, or taking over from a replica that died: the other's launches in flight
 * are settled exactly as after a crash), then every supervise_interval a supervision tick, a
 * scheduling pass, and now and then the registration sweep and the pruning of old records. A
 * standby runs none of it; launches and ticks check the lease again right before they act.
 */
export class ActingLoops {
  private interval: NodeJS.Timeout | undefined;
  private ticks = 0;
  private takingOver: Promise<void> | undefined;
  private off: (() => void) | undefined;

  constructor(private readonly d: ActingLoopsDeps) {}

  async start(): Promise<void> {
    const { lease } = this.d;
    this.off = lease.onChange((c) => this.onLeaseChange(c));
    await lease.start();
    // The single-replica lease is held from the start and never announces it.
    if (lease.status().role === "single") await this.takeOver("start");
    else await this.takingOver;
    if (!this.d.timers) return;
    this.interval = setInterval(() => this.tick(), this.d.ctx.config.dispatcher.supervise_interval);
    this.tick();
  }

  private onLeaseChange(c: LeaseChange): void {
    const log = this.d.ctx.logger;
    if (c.held) {
      const p = this.takeOver("takeover")
        .catch((err) =>
          // A record the lease's fence refused: the lease is lost already, and the lease logs that.
          log[isNotLeader(err) ? "info" : "error"](
            { err: errorMessage(err) },
            "recovery after taking the lease over failed; the supervisor settles interrupted launches on its next tick",
          ),
        )
        .finally(() => {
          if (this.takingOver === p) this.takingOver = undefined;
        });
      this.takingOver = p;
      if (this.d.timers && this.interval) void p.then(() => this.tick());
    } else {
      // Launches in flight stop at their next step (they check the lease); nothing new starts.
      this.d.supervisor.recoverOnNextTick();
      log.warn(
        { epoch: c.epoch, why: c.why },
        "standby: another replica launches and supervises runners now (or will once it holds the lease)",
      );
    }
  }

  private async takeOver(when: "start" | "takeover"): Promise<void> {
    const { ctx, scheduler, supervisor } = this.d;
    const report = await recover(ctx, (name) => scheduler.isLaunching(name), when);
    if (report.adopted.length + report.completed.length + report.requeued.length + report.failed.length > 0) {
      ctx.logger.info(
        report,
        when === "start" ? "recovered interrupted launches" : "recovered the launches the previous lease holder left",
      );
    }
    // A platform whose instances could not be listed now is recovered on a later tick.
    if (report.unobservable.length > 0) supervisor.recoverOnNextTick();
    scheduler.kick();
  }

  /** One round of the acting loops; nothing on a standby or while taking over. */
  tick(): void {
    const { ctx, supervisor, scheduler, sweep, store, lease } = this.d;
    if (!lease.held() || this.takingOver) return;
    const { logger } = ctx;
    this.ticks += 1;
    void supervisor
      .tick()
      .catch((err) => logger[isNotLeader(err) ? "info" : "error"]({ err: errorMessage(err) }, "supervision tick failed"));
    scheduler.kick();
    if (this.ticks % 6 === 1) void sweep.run().catch((err) => logger.warn({ err: errorMessage(err) }, "registration sweep failed"));
    if (this.ticks % 360 === 1) {
      void store
        .pruneFinished(new Date(ctx.now().getTime() - ctx.config.dispatcher.retention))
        .then((n) => n > 0 && logger.info({ pruned: n }, "pruned finished runner records"))
        .catch((err) => logger.warn({ err: errorMessage(err) }, "pruning finished runner records failed; it is tried again later"));
    }
  }

  /** Stops the loops (launches in flight are drained by the caller), then gives the lease up. */
  stopTicking(): void {
    if (this.interval) clearInterval(this.interval);
    this.interval = undefined;
  }

  async releaseLease(): Promise<void> {
    this.off?.();
    await this.d.lease.stop();
  }
}
