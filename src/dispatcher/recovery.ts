import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER } from "../namespace/launcher.js";
import type { InstanceInfo } from "../namespace/launcher.js";
import type { Platform } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";

export interface RecoveryReport {
  adopted: string[];
  /** Interrupted launches whose instance ran its job and ended while the dispatcher was down. */
  completed: string[];
  requeued: string[];
  failed: string[];
  unobservable: Platform[];
}

/** The reasons recorded, by when the interrupted launch is found. */
const WORDS = {
  start: {
    adopted: (id: string) => `recovered after a restart: adopted instance ${id} whose launch was interrupted`,
    completed:
      "recovered after a restart: the interrupted launch's instance already ran its job and ended (Forgejo had removed its ephemeral registration); not launching again",
    requeued: "recovered after a restart: the launch was interrupted before an instance existed; launching again",
    failed: "recovered after a restart: the launch was interrupted and the queue deadline has passed",
  },
  takeover: {
    adopted: (id: string) => `recovered when this replica took the lease over: adopted instance ${id} whose launch was interrupted`,
    completed:
      "recovered when this replica took the lease over: the interrupted launch's instance already ran its job and ended (Forgejo had removed its ephemeral registration); not launching again",
    requeued: "recovered when this replica took the lease over: the launch was interrupted before an instance existed; launching again",
    failed: "recovered when this replica took the lease over: the launch was interrupted and the queue deadline has passed",
  },
  tick: {
    adopted: (id: string) => `settled a launch that stopped without recording its outcome: adopted instance ${id}`,
    completed:
      "settled a launch that stopped without recording its outcome: its instance already ran its job and ended (Forgejo had removed its ephemeral registration); not launching again",
    requeued: "settled a launch that stopped without recording its outcome: no instance of it exists; launching again",
    failed: "settled a launch that stopped without recording its outcome: no instance of it exists and the queue deadline has passed",
  },
} as const;

/**
 * Settles every runner whose launch was interrupted: on start, before the scheduler and supervisor
 * run ("start"), when this replica takes the lease over from another ("takeover": the other's
 * launches in flight are settled exactly as after a crash), and on any tick that finds a `launching` record no launch owns ("tick": the state
 * database refused the launch's outcome, the launch crashed). An instance that carries its name is
 * adopted; otherwise the runner goes back to pending (its unused registration deleted) if it is
 * still within its queue deadline. Running and finishing runners need nothing here: the
 * supervisor's next tick judges them from the instance list, and destroys instances no record
 * explains after two sightings.
 */
export async function recover(
  ctx: DispatcherContext,
  inFlight: (name: string) => boolean = () => false,
  when: keyof typeof WORDS = "start",
): Promise<RecoveryReport> {
  const words = WORDS[when];
  const report: RecoveryReport = { adopted: [], completed: [], requeued: [], failed: [], unobservable: [] };
  // Launches this process has in flight are not interrupted: leave them to their launch.
  const launching = (await ctx.records.store.listRunners({ states: ["launching"] })).filter((r) => !inFlight(r.name));
  const instances = new Map<Platform, InstanceInfo[] | undefined>();
  for (const platform of new Set(launching.map((r) => r.platform))) {
    const launcher = ctx.launchers[platform];
    try {
      instances.set(
        platform,
        launcher
          ? (await launcher.list({ [LABEL_OWNER]: ctx.config.dispatcher.id })).filter(
              (i) => (i.labels[LABEL_PLATFORM] ?? "linux") === platform,
            )
          : [],
      );
    } catch (err) {
      instances.set(platform, undefined);
      report.unobservable.push(platform);
      ctx.logger.warn(
        { platform, err: errorMessage(err) },
        "cannot list instances during recovery; interrupted launches stay pending until the next start or until listing works",
      );
    }
  }
  const now = ctx.now();
  for (const r of launching) {
    const list = instances.get(r.platform);
    if (!list) {
      // Not knowing whether an instance exists, relaunching could start a second one; the orphan
      // sweep would remove it, but a runner stuck in launching is clearer. Requeue only when listing works.
      continue;
    }
    // The instance the record names, if it is there; else any carrying the runner's name.
    const mine = list.filter((i) => i.labels[LABEL_RUNNER] === r.name);
    const found = mine.find((i) => i.instanceId === r.instanceId) ?? mine[0];
    if (found) {
      const started = found.createdAt ? Date.parse(found.createdAt) : now.getTime();
      await ctx.records.transition(r, ["launching"], "running", words.adopted(found.instanceId), {
        instanceId: found.instanceId,
        launchedAt: new Date(started).toISOString(),
        expiresAt: new Date(started + r.ttlMs).toISOString(),
      });
      report.adopted.push(r.name);
      continue;
    }
    if (r.registration === "ephemeral" && r.forgejoRunnerId !== undefined) {
      const existed = await ctx.forgejo.deleteRunner(r.scope, r.forgejoRunnerId).catch((err) => {
        ctx.logger.warn({ runner: r.name, err: errorMessage(err) }, "could not delete the unused registration of an interrupted launch");
        return true;
      });
      if (!existed) {
        // Forgejo deletes an ephemeral runner once its job is done: the instance came up while we
        // were down, ran the job and ended. Launching again would start a runner with nothing to do.
        await ctx.records.transition(r, ["launching"], "done", words.completed, { finishedAt: now.toISOString() });
        report.completed.push(r.name);
        continue;
      }
    }
    if (now.getTime() < Date.parse(r.queueDeadline)) {
      await ctx.records.transition(r, ["launching"], "pending", words.requeued);
      report.requeued.push(r.name);
    } else {
      await ctx.records.transition(r, ["launching"], "failed", words.failed, {
        finishedAt: now.toISOString(),
      });
      report.failed.push(r.name);
    }
  }
  return report;
}
