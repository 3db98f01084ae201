import { formatDuration } from "../config/duration.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER, LaunchError } from "../namespace/launcher.js";
import type { LaunchSpec, Launcher } from "../namespace/launcher.js";
import { isNotLeader } from "../ha/gate.js";
import { StateUnavailableError } from "../store/errors.js";
import type { RunnerRecord } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage, isActing, isRetryable } from "./context.js";
import { finishRunner } from "./finish.js";
import { pause } from "./pause.js";

export function instanceLabels(ctx: DispatcherContext, r: RunnerRecord): Record<string, string> {
  return {
    ...ctx.config.namespace.instance_tags,
    [LABEL_OWNER]: ctx.config.dispatcher.id,
    [LABEL_RUNNER]: r.name,
    [LABEL_PLATFORM]: r.platform,
  };
}

/**
 * How a launch ended. "interrupted": the dispatcher stopped while it waited for the state database
 * or for a look at Namespace, or this replica lost its lease; the runner stays `launching` and is
 * settled from what Namespace shows (by the next start, or by the replica that took the lease over).
 */
export type LaunchOutcome =
  { kind: "running" } | { kind: "retry"; delayMs: number } | { kind: "failed" } | { kind: "cancelled" } | { kind: "interrupted" };

/** Backoff between launch attempts: 5 s, 15 s, 45 s … capped at 2 min. */
export function retryDelayMs(attempt: number): number {
  return Math.min(120_000, 5_000 * 3 ** Math.max(0, attempt - 1));
}

/**
 * Takes a runner from `launching` to `running`: credentials, instance, record. Every external
 * action is recorded right after it happens so a restart knows what may exist. Records are written
 * durably: while the state database is unavailable the launch waits for it rather than acting
 * without a record or failing a runner whose instance is up. `signal` (shutdown) ends such waits.
 */
export async function launchRunner(ctx: DispatcherContext, r: RunnerRecord, signal?: AbortSignal): Promise<LaunchOutcome> {
  // The scheduler counted this attempt in the same write that moved the runner to launching.
  const attempt = Math.max(1, r.launchAttempts);
  const max = ctx.config.dispatcher.launch_attempts;
  const log = ctx.logger.child({ runner: r.name, dispatch: r.dispatchId, job: r.job?.id });
  const durably = <T>(what: string, write: () => Promise<T>) => ctx.records.durably(`runner ${r.name}: ${what}`, write, signal);
  const launcher = ctx.launchers[r.platform];
  // What may exist outside our records if this attempt fails: a registration, an instance.
  let registered: number | undefined;
  let instanceMayExist = false;
  let rec: RunnerRecord = r;
  const started = ctx.now().getTime();
  try {
    if (!launcher) {
      await durably("no launcher", () =>
        finishRunner(ctx, rec, {
          to: "failed",
          reason: `no ${r.platform} launcher is configured (labels ${r.labels.join(", ")}); ${r.platform === "macos" ? "set namespace.token_file for the Compute API" : "check the namespace section of the config"}`,
        }),
      );
      return { kind: "failed" };
    }
    // One durable write records the credentials and what comes next (each fsync is on the path to
    // `nsc run`): the registration must be on record before an instance can exist.
    const starting = `starting a ${r.platform} instance (attempt ${attempt}/${max})`;
    const credentials = await ctx.creds.obtain(rec, async (id) => {
      registered = id;
      rec =
        (await durably("ephemeral registration", () =>
          ctx.records.update(r.name, { forgejoRunnerId: id, registration: "ephemeral", reason: starting }),
        )) ?? rec;
    });
    if (credentials.mode === "token")
      rec = (await durably("registration token", () => ctx.records.update(r.name, { registration: "token", reason: starting }))) ?? rec;
    const spec: LaunchSpec = {
      runnerName: r.name,
      platform: r.platform,
      labels: r.labels,
      image: r.image,
      machineType: r.machineType,
      ttlMs: r.ttlMs,
      env: r.env,
      credentials,
      jobHandle: credentials.mode === "ephemeral" ? r.job?.handle : undefined,
      instanceLabels: instanceLabels(ctx, r),
    };
    if (!isActing(ctx)) return lostLease(log, "before starting the instance");
    instanceMayExist = true;
    const { instanceId } = await launcher.launch(spec);
    ctx.metrics.launchDuration.observe({ platform: r.platform, outcome: "ok" }, (ctx.now().getTime() - started) / 1000);
    // The replica that took the lease over adopts the instance (recovery lists it by the runner's name).
    if (!isActing(ctx)) return lostLease(log, `after instance ${instanceId} started`);
    return await recordRunning(ctx, r, launcher, instanceId, durably);
  } catch (err) {
    if (isNotLeader(err) || !isActing(ctx)) return lostLease(log, `(${errorMessage(err)})`);
    if (stoppedWaiting(err, signal)) {
      log.warn({ err: errorMessage(err) }, "stopping while the state database is unavailable; the launch is settled on the next start");
      return { kind: "interrupted" };
    }
    ctx.metrics.launchDuration.observe({ platform: r.platform, outcome: "error" }, (ctx.now().getTime() - started) / 1000);
    try {
      return await failedAttempt(ctx, rec, err, { attempt, launcher, registered, instanceMayExist, durably, signal });
    } catch (e) {
      // A record the lease's fence refused: lost the lease while settling the attempt.
      if (isNotLeader(e)) return lostLease(log, `(${errorMessage(e)})`);
      if (stoppedWaiting(e, signal)) return { kind: "interrupted" };
      throw e;
    }
  }
}

/** This replica lost its lease mid-launch: it stops here, writing nothing more; the new holder settles the runner. */
function lostLease(log: { warn: (msg: string) => void }, when: string): LaunchOutcome {
  log.warn(
    `lost the lease ${when}; leaving the launch to the replica that holds it now (it adopts or relaunches the runner as after a crash)`,
  );
  return { kind: "interrupted" };
}

/** A durable write that gave up because the dispatcher is stopping. */
function stoppedWaiting(err: unknown, signal: AbortSignal | undefined): boolean {
  return err instanceof StateUnavailableError && signal?.aborted === true;
}

type Durably = <T>(what: string, write: () => Promise<T>) => Promise<T>;

/** The instance is up: record it. A cancel that came meanwhile means the instance is ours to remove. */
async function recordRunning(
  ctx: DispatcherContext,
  r: RunnerRecord,
  launcher: Launcher,
  instanceId: string,
  durably: Durably,
): Promise<LaunchOutcome> {
  const now = ctx.now();
  const running = await durably(`-> running (instance ${instanceId})`, () =>
    ctx.records.transition(
      r,
      ["launching"],
      "running",
      `instance ${instanceId} is up; forgejo-runner is waiting for ${r.job ? `job ${r.job.id}` : "a job"} (TTL ${formatDuration(r.ttlMs)})`,
      { instanceId, launchedAt: now.toISOString(), expiresAt: new Date(now.getTime() + r.ttlMs).toISOString() },
    ),
  );
  if (!running) {
    // Moved on without us: cancelled (destroy what we made), or adopted already by a replica that
    // took the lease over while this one was paused (its instance now: leave it alone).
    const latest = await durably("re-read", () => ctx.records.store.getRunner(r.name));
    if (latest?.instanceId === instanceId && latest.state === "running") return { kind: "running" };
    await durably(`instance ${instanceId} of a cancelled launch`, () => ctx.records.update(r.name, { instanceId }));
    ctx.logger.info({ runner: r.name, instance: instanceId }, "runner was cancelled during launch; destroying the new instance");
    await launcher
      .destroy(instanceId)
      .catch((err) =>
        ctx.logger.warn({ runner: r.name, err: errorMessage(err) }, "destroy after cancel failed; the orphan sweep will retry"),
      );
    return { kind: "cancelled" };
  }
  ctx.metrics.timeToRunning.observe({ platform: r.platform }, (now.getTime() - Date.parse(r.createdAt)) / 1000);
  return { kind: "running" };
}

interface AttemptState {
  attempt: number;
  launcher: Launcher | undefined;
  /** An ephemeral registration made in this attempt, known even if recording it failed. */
  registered: number | undefined;
  instanceMayExist: boolean;
  durably: Durably;
  signal: AbortSignal | undefined;
}

/**
 * A failed attempt: remove what it may have left (instance, registration), then retry or fail.
 * The runner is not relaunched before its leftover instance is known to be gone.
 */
async function failedAttempt(ctx: DispatcherContext, rec: RunnerRecord, err: unknown, a: AttemptState): Promise<LaunchOutcome> {
  const max = ctx.config.dispatcher.launch_attempts;
  const msg = errorMessage(err);
  const log = ctx.logger.child({ runner: rec.name });
  if (a.launcher && a.instanceMayExist && !isNoInstanceFailure(err)) {
    if (!(await removeLeftovers(ctx, rec, a.launcher, `launch attempt ${a.attempt}/${max} failed: ${msg}`, a)))
      return { kind: "interrupted" };
  }
  // Past the queue deadline (also when the leftover check gave up) the runner fails: never relaunched.
  const current = (await a.durably("re-read", () => ctx.records.store.getRunner(rec.name))) ?? rec;
  if (current.state !== "launching") return { kind: "cancelled" };
  const registration = current.registration === "ephemeral" ? (current.forgejoRunnerId ?? a.registered) : a.registered;
  if (registration !== undefined) {
    await ctx.forgejo
      .deleteRunner(current.scope, registration)
      .catch((e) =>
        log.warn({ err: errorMessage(e) }, "could not delete the unused Forgejo registration; the stale-registration sweep will retry"),
      );
  }
  const withinDeadline = ctx.now().getTime() < Date.parse(current.queueDeadline);
  if (isRetryable(err) && a.attempt < max && withinDeadline) {
    const delayMs = retryDelayMs(a.attempt);
    const reason = `launch attempt ${a.attempt}/${max} failed: ${msg}; retrying in ${formatDuration(delayMs)}`;
    await a.durably("-> pending", () => ctx.records.transition(current, ["launching"], "pending", reason));
    return { kind: "retry", delayMs };
  }
  await a.durably("-> failed", () =>
    finishRunner(ctx, current, { to: "failed", reason: `launch failed (attempt ${a.attempt}/${max}): ${msg}` }),
  );
  return { kind: "failed" };
}

/**
 * Failures that mean the command was refused before anything was created. Every launcher reports
 * its failures as LaunchError (nsc, Compute API and WinRM errors are wrapped with their kind).
 */
function isNoInstanceFailure(err: unknown): boolean {
  return err instanceof LaunchError && (err.kind === "invalid" || err.kind === "auth");
}

/**
 * Looks for instances carrying the runner's name (a timed-out `nsc run` or `nsc create` leaves one
 * that nobody has the ID of) and destroys them. A look or a destroy that fails is repeated every
 * supervise_interval until it works: launching again without knowing would leave a second instance
 * running until its TTL. It gives up at the runner's queue deadline (the runner then fails, and the
 * orphan sweep removes what is left); false when the dispatcher stopped first.
 */
async function removeLeftovers(
  ctx: DispatcherContext,
  r: RunnerRecord,
  launcher: Launcher,
  failure: string,
  a: AttemptState,
): Promise<boolean> {
  const log = ctx.logger.child({ runner: r.name });
  const filter = { [LABEL_OWNER]: ctx.config.dispatcher.id, [LABEL_RUNNER]: r.name };
  for (let look = 1; ; look++) {
    if (a.signal?.aborted) return false;
    if (look > 1 && ctx.now().getTime() >= Date.parse(r.queueDeadline)) return true;
    try {
      for (const i of await launcher.list(filter)) {
        if ((i.labels[LABEL_PLATFORM] ?? "linux") !== r.platform) continue;
        await launcher.destroy(i.instanceId);
        log.info({ instance: i.instanceId }, `destroyed instance ${i.instanceId} left by a failed launch attempt`);
      }
      return true;
    } catch (err) {
      if (look === 1) {
        const reason = `${failure}; not launching again until it is known that this attempt left no instance (${errorMessage(err)}); looking again`;
        log.warn(reason);
        await a.durably("leftover check", () => ctx.records.update(r.name, { reason }));
      }
      await pause(ctx.config.dispatcher.supervise_interval, a.signal);
    }
  }
}
