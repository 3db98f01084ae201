import { formatDuration } from "../config/duration.js";
import type { InstanceInfo, Launcher } from "../namespace/launcher.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER } from "../namespace/launcher.js";
import { LIVE_STATES } from "../store/types.js";
import type { Platform, RunnerRecord } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";
import { finishRunner } from "./finish.js";
import { runLimited } from "./concurrency.js";
import { recover } from "./recovery.js";
import { RegistrationWatch } from "./registration-watch.js";
import type { Scheduler } from "./scheduler.js";

/** How many successive looks must agree before we act on an absence (DESIGN: two, not one). */
export const CONFIRMATIONS = 2;

export interface TickReport {
  observed: Partial<Record<Platform, number | "error">>;
  finished: string[];
  orphansDestroyed: string[];
}

/**
 * One loop watches every runner: per tick one `list` call per instance source (`nsc list` for
 * Linux and Windows, the Compute API for macOS; not one process per runner), then decisions from
 * plain data. Nothing is destroyed on a single failed or empty look.
 */
export class Supervisor {
  private readonly misses = new Map<string, number>();
  /** Per platform: each platform's pass forgets only the sightings its own list no longer shows. */
  private readonly orphanSightings = new Map<Platform, Map<string, number>>();
  private ticking: Promise<TickReport> | undefined;
  private readonly registrations: RegistrationWatch;
  private recoveryPending = false;

  constructor(
    private readonly ctx: DispatcherContext,
    private readonly scheduler: Scheduler,
  ) {
    this.registrations = new RegistrationWatch(ctx);
  }

  /**
   * Start-up recovery could not list a platform: its launches are recovered at the start of a
   * later tick (as every launch that stopped without recording an outcome is).
   */
  recoverOnNextTick(): void {
    this.recoveryPending = true;
  }

  /** Runs a tick, or joins the one in progress. */
  tick(): Promise<TickReport> {
    this.ticking ??= this.runTick().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  private async runTick(): Promise<TickReport> {
    const { ctx } = this;
    const end = ctx.metrics.superviseDuration.startTimer();
    const report: TickReport = { observed: {}, finished: [], orphansDestroyed: [] };
    try {
      let live = await ctx.records.store.listRunners({ states: LIVE_STATES });
      if (this.recoveryPending || live.some((r) => this.stranded(r))) {
        await this.settleStranded();
        live = await ctx.records.store.listRunners({ states: LIVE_STATES });
      }
      const byPlatform = new Map<Platform, RunnerRecord[]>();
      for (const r of live) {
        const list = byPlatform.get(r.platform);
        if (list) list.push(r);
        else byPlatform.set(r.platform, [r]);
      }

      const consumed = await this.registrations.consumed(live);
      for (const [source, platforms] of this.listGroups()) {
        // One listing per source: Linux and Windows share `nsc list`. Prefer the Linux launcher,
        // whose list applies no platform filter, so unlabelled strays of ours are seen too.
        const lister = ctx.launchers[platforms.includes("linux") ? "linux" : (platforms[0] as Platform)];
        let all: InstanceInfo[];
        try {
          all = (await lister?.list({ [LABEL_OWNER]: ctx.config.dispatcher.id })) ?? [];
        } catch (err) {
          for (const p of platforms) report.observed[p] = "error";
          ctx.logger.warn({ source, err: errorMessage(err) }, "could not list instances; no runner is judged on this tick");
          continue;
        }
        for (const platform of platforms) {
          // An instance of ours without a platform label counts as Linux, so a stray is still swept.
          const instances = all.filter((i) => (i.labels[LABEL_PLATFORM] ?? "linux") === platform);
          report.observed[platform] = instances.length;
          await this.judge(byPlatform.get(platform) ?? [], instances, consumed, report);
          await this.sweepOrphans(platform, byPlatform.get(platform) ?? [], instances, report);
        }
      }
      await this.updateGauges(live);
    } finally {
      end();
    }
    return report;
  }

  /** A `launching` record no launch of this process owns: its launch stopped without recording an outcome. */
  private stranded(r: RunnerRecord): boolean {
    return r.state === "launching" && !this.scheduler.isLaunching(r.name);
  }

  /**
   * Settles launches that stopped without recording their outcome (the state database refused the
   * write, the launch crashed, start-up could not list their platform), as start-up recovery does:
   * adopt the instance carrying the runner's name, or launch again, or fail past the deadline.
   */
  private async settleStranded(): Promise<void> {
    const { ctx } = this;
    const afterStart = this.recoveryPending;
    const r = await recover(ctx, (name) => this.scheduler.isLaunching(name), afterStart ? "start" : "tick");
    this.recoveryPending = afterStart && r.unobservable.length > 0;
    const settled = r.adopted.length + r.completed.length + r.requeued.length + r.failed.length;
    if (afterStart && !this.recoveryPending) ctx.logger.info(r, "recovered interrupted launches once their platform could be listed");
    else if (settled > 0) ctx.logger.info(r, "settled launches that stopped without recording their outcome");
  }

  /** Platforms grouped by the source their instances are listed from. */
  private listGroups(): Map<string, Platform[]> {
    const groups = new Map<string, Platform[]>();
    for (const [platform, launcher] of Object.entries(this.ctx.launchers) as [Platform, Launcher][]) {
      const key = launcher.listSource ?? platform;
      groups.set(key, [...(groups.get(key) ?? []), platform]);
    }
    return groups;
  }

  private async judge(runners: RunnerRecord[], instances: InstanceInfo[], consumed: Set<string>, report: TickReport): Promise<void> {
    const { ctx } = this;
    const alive = new Set(instances.map((i) => i.instanceId));
    const now = ctx.now().getTime();
    // Decide from plain data first, then act with bounded concurrency: 100 runners ending in one
    // tick must not take 100 sequential `nsc destroy` calls.
    const endings: (() => Promise<unknown>)[] = [];
    const end = (r: RunnerRecord, outcome?: () => Promise<{ to: "done" | "failed"; reason: string }>) =>
      endings.push(async () => {
        const result = await finishRunner(ctx, r, outcome ? await outcome() : undefined);
        if (result?.state !== "finishing") report.finished.push(r.name);
      });
    for (const r of runners) {
      if (r.state === "finishing") {
        end(r);
        continue;
      }
      if (r.state !== "running" || !r.instanceId) continue;
      if (r.expiresAt && now >= Date.parse(r.expiresAt)) {
        end(r, async () => ({ to: "failed", reason: `TTL ${formatDuration(r.ttlMs)} reached before the job finished; instance destroyed` }));
        continue;
      }
      if (alive.has(r.instanceId)) {
        this.misses.delete(r.name);
        // Windows instances (and macOS ones started through the nsc fallback) do not end with
        // their job; Forgejo deleting the ephemeral runner says the job is done.
        if (consumed.has(r.name)) {
          end(r, async () => ({ to: "done", reason: `job finished: Forgejo removed the ephemeral runner; instance ${r.instanceId} destroyed` }));
        }
        continue;
      }
      const misses = (this.misses.get(r.name) ?? 0) + 1;
      this.misses.set(r.name, misses);
      if (misses < CONFIRMATIONS) continue;
      this.misses.delete(r.name);
      end(r, () => this.endedOutcome(r));
    }
    await runLimited(endings, Math.max(4, ctx.config.namespace.max_parallel), (err) =>
      ctx.logger.error({ err: errorMessage(err) }, "finishing a runner failed; it is retried on the next tick"),
    );
  }

  /** An instance that ended on its own: did its runner take the job? */
  private async endedOutcome(r: RunnerRecord): Promise<{ to: "done" | "failed"; reason: string }> {
    if (r.registration !== "ephemeral" || r.forgejoRunnerId === undefined) {
      return { to: "done", reason: `instance ${r.instanceId} ended: forgejo-runner exited` };
    }
    try {
      const still = await this.ctx.forgejo.getRunner(r.scope, r.forgejoRunnerId);
      // Forgejo deletes an ephemeral runner once its job is done (docs/upstream-contracts.md#ephemeral-runners).
      if (!still) return { to: "done", reason: `instance ${r.instanceId} ended after its job finished` };
      return { to: "failed", reason: `instance ${r.instanceId} ended before forgejo-runner finished a job; registration removed` };
    } catch (err) {
      return { to: "done", reason: `instance ${r.instanceId} ended (could not ask Forgejo whether the job ran: ${errorMessage(err)})` };
    }
  }

  /** Instances carrying our owner label that no live record explains are destroyed after two sightings. */
  private async sweepOrphans(platform: Platform, runners: RunnerRecord[], instances: InstanceInfo[], report: TickReport): Promise<void> {
    const { ctx } = this;
    const byName = new Map(runners.map((r) => [r.name, r]));
    const sightings = this.orphanSightings.get(platform) ?? new Map<string, number>();
    this.orphanSightings.set(platform, sightings);
    const seen = new Set<string>();
    for (const inst of instances) {
      const owner = byName.get(inst.labels[LABEL_RUNNER] ?? "");
      const explained =
        owner !== undefined &&
        (owner.instanceId === inst.instanceId || (owner.state === "launching" && (this.scheduler.isLaunching(owner.name) || !owner.instanceId)));
      if (explained) continue;
      seen.add(inst.instanceId);
      const n = (sightings.get(inst.instanceId) ?? 0) + 1;
      sightings.set(inst.instanceId, n);
      if (n < CONFIRMATIONS) continue;
      const launcher = ctx.launchers[platform];
      try {
        await launcher?.destroy(inst.instanceId);
        sightings.delete(inst.instanceId);
        report.orphansDestroyed.push(inst.instanceId);
        ctx.logger.warn(
          { instance: inst.instanceId, runner: inst.labels[LABEL_RUNNER] },
          `destroyed orphan instance ${inst.instanceId}: it carries our labels but no live runner record owns it`,
        );
      } catch (err) {
        ctx.logger.warn({ instance: inst.instanceId, err: errorMessage(err) }, "could not destroy orphan instance; will retry");
      }
    }
    for (const id of [...sightings.keys()]) if (!seen.has(id)) sightings.delete(id);
  }

  /** Runner gauges from the live records this tick already read (state as of the tick's start), plus the pending ones. */
  private async updateGauges(live: readonly RunnerRecord[]): Promise<void> {
    const pending = await this.ctx.records.store.listRunners({ states: ["pending"] });
    this.ctx.metrics.runnersByState.reset();
    for (const r of [...pending, ...live]) this.ctx.metrics.runnersByState.inc({ state: r.state, platform: r.platform });
  }
}
