import { isNotLeader } from "../ha/gate.js";
import type { InstanceInfo, Launcher } from "../namespace/launcher.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER } from "../namespace/launcher.js";
import { INSTANCE_HOLDING_STATES } from "../api/states.js";
import type { Platform, RunnerRecord } from "../store/types.js";
import { errorMessage } from "../shared/error-message.js";
import { Sightings } from "../shared/sightings.js";
import type { DispatcherContext } from "./context.js";
import { finishRunner } from "./finish.js";
import { asksForgejo, endedOutcome, judgeRunners, unexplainedInstances } from "./judge.js";
import type { EndingOutcome } from "./judge.js";
import { runLimited } from "./concurrency.js";
import { recover } from "./recovery.js";
import { RegistrationWatch } from "./registration-watch.js";
import type { Scheduler } from "./scheduler.js";

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
  /**
   * Per platform, as each platform's look forgets only what its own list no longer shows: runners
   * whose instance was missing, and instances no live record explains.
   */
  private readonly misses = new Map<Platform, Sightings>();
  private readonly orphanSightings = new Map<Platform, Sightings>();
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
      let live = await ctx.records.store.listRunners({ states: INSTANCE_HOLDING_STATES });
      if (this.recoveryPending || live.some((r) => this.stranded(r))) {
        await this.settleStranded();
        live = await ctx.records.store.listRunners({ states: INSTANCE_HOLDING_STATES });
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
          await this.judge(platform, byPlatform.get(platform) ?? [], instances, consumed, report);
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

  /** Gathers one platform's look, decides (judgeRunners), then ends the runners with bounded concurrency. */
  private async judge(
    platform: Platform,
    runners: RunnerRecord[],
    instances: InstanceInfo[],
    consumed: Set<string>,
    report: TickReport,
  ): Promise<void> {
    const { ctx } = this;
    const endings = judgeRunners({
      runners,
      alive: new Set(instances.map((i) => i.instanceId)),
      consumed,
      now: ctx.now().getTime(),
      misses: sightingsOf(this.misses, platform),
    });
    // 100 runners ending in one tick must not take 100 sequential `nsc destroy` calls.
    const tasks = endings.map((e) => async () => {
      const outcome = e.why === "finishing" ? undefined : e.why === "instance-ended" ? await this.endedOutcome(e.runner) : e.outcome;
      const result = await finishRunner(ctx, e.runner, outcome);
      if (result?.state !== "finishing") report.finished.push(e.runner.name);
    });
    await runLimited(tasks, Math.max(4, ctx.config.namespace.max_parallel), (err) =>
      // A record the lease's fence refused (the lease is lost): the holder's tick finishes it.
      ctx.logger[isNotLeader(err) ? "info" : "error"](
        { err: errorMessage(err) },
        "finishing a runner failed; it is retried on the next tick",
      ),
    );
  }

  /** An instance that ended on its own: did its runner take the job? */
  private async endedOutcome(r: RunnerRecord): Promise<EndingOutcome> {
    if (!asksForgejo(r)) return endedOutcome(r, undefined);
    try {
      return endedOutcome(r, (await this.ctx.forgejo.getRunner(r.scope, r.forgejoRunnerId)) ? "kept" : "removed");
    } catch (err) {
      return endedOutcome(r, { error: errorMessage(err) });
    }
  }

  /** Instances carrying our owner label that no live record explains are destroyed after two sightings. */
  private async sweepOrphans(platform: Platform, runners: RunnerRecord[], instances: InstanceInfo[], report: TickReport): Promise<void> {
    const { ctx } = this;
    const orphans = unexplainedInstances(instances, runners, (name) => this.scheduler.isLaunching(name));
    const sightings = sightingsOf(this.orphanSightings, platform);
    sightings.keepOnly(orphans.map((i) => i.instanceId));
    for (const inst of orphans) {
      if (!sightings.see(inst.instanceId)) continue;
      try {
        await ctx.launchers[platform]?.destroy(inst.instanceId);
        sightings.forget(inst.instanceId);
        report.orphansDestroyed.push(inst.instanceId);
        ctx.logger.warn(
          { instance: inst.instanceId, runner: inst.labels[LABEL_RUNNER] },
          `destroyed orphan instance ${inst.instanceId}: it carries our labels but no live runner record owns it`,
        );
      } catch (err) {
        ctx.logger.warn({ instance: inst.instanceId, err: errorMessage(err) }, "could not destroy orphan instance; will retry");
      }
    }
  }

  /** Runner gauges from the live records this tick already read (state as of the tick's start), plus the pending ones. */
  private async updateGauges(live: readonly RunnerRecord[]): Promise<void> {
    const pending = await this.ctx.records.store.listRunnersWithoutHistory({ states: ["pending"] });
    this.ctx.metrics.runnersByState.reset();
    for (const r of [...pending, ...live]) this.ctx.metrics.runnersByState.inc({ state: r.state, platform: r.platform });
  }
}

/** A platform's sightings, made on its first look (two sightings before acting: DESIGN). */
function sightingsOf(byPlatform: Map<Platform, Sightings>, platform: Platform): Sightings {
  let s = byPlatform.get(platform);
  if (!s) byPlatform.set(platform, (s = new Sightings()));
  return s;
}
