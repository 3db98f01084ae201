import { formatDuration } from "../config/duration.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER } from "../namespace/launcher.js";
import type { LaunchSpec } from "../namespace/launcher.js";
import type { RunnerRecord } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage, isRetryable } from "./context.js";
import { finishRunner } from "./finish.js";

export function instanceLabels(ctx: DispatcherContext, r: RunnerRecord): Record<string, string> {
  return {
    ...ctx.config.namespace.instance_tags,
    [LABEL_OWNER]: ctx.config.dispatcher.id,
    [LABEL_RUNNER]: r.name,
    [LABEL_PLATFORM]: r.platform,
  };
}

export type LaunchOutcome = { kind: "running" } | { kind: "retry"; delayMs: number } | { kind: "failed" } | { kind: "cancelled" };

/** Backoff between launch attempts: 5 s, 15 s, 45 s … capped at 2 min. */
export function retryDelayMs(attempt: number): number {
  return Math.min(120_000, 5_000 * 3 ** Math.max(0, attempt - 1));
}

/**
 * Takes a runner from `launching` to `running`: credentials, instance, record. Every external
 * action is recorded right after it happens so a restart knows what may exist.
 */
export async function launchRunner(ctx: DispatcherContext, r: RunnerRecord): Promise<LaunchOutcome> {
  const attempt = r.launchAttempts + 1;
  const max = ctx.config.dispatcher.launch_attempts;
  const log = ctx.logger.child({ runner: r.name, dispatch: r.dispatchId, job: r.job?.id });
  let rec: RunnerRecord = (await ctx.records.update(r.name, { launchAttempts: attempt })) ?? r;
  const launcher = ctx.launchers[r.platform];
  if (!launcher) {
    await finishRunner(ctx, rec, {
      to: "failed",
      reason: `no ${r.platform} launcher is configured (labels ${r.labels.join(", ")}); ${r.platform === "macos" ? "set namespace.token_file for the Compute API" : "check the namespace section of the config"}`,
    });
    return { kind: "failed" };
  }

  const started = ctx.now().getTime();
  try {
    const credentials = await ctx.creds.obtain(rec, async (id) => {
      rec = (await ctx.records.update(r.name, { forgejoRunnerId: id, registration: "ephemeral" })) ?? rec;
    });
    if (credentials.mode === "token") rec = (await ctx.records.update(r.name, { registration: "token" })) ?? rec;
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
    await ctx.records.update(r.name, { reason: `starting a ${r.platform} instance (attempt ${attempt}/${max})` });
    const { instanceId } = await launcher.launch(spec);
    const now = ctx.now();
    ctx.metrics.launchDuration.observe({ platform: r.platform, outcome: "ok" }, (now.getTime() - started) / 1000);
    const running = await ctx.records.transition(
      r,
      ["launching"],
      "running",
      `instance ${instanceId} is up; forgejo-runner is waiting for ${r.job ? `job ${r.job.id}` : "a job"} (TTL ${formatDuration(r.ttlMs)})`,
      { instanceId, launchedAt: now.toISOString(), expiresAt: new Date(now.getTime() + r.ttlMs).toISOString() },
    );
    if (!running) {
      // Cancelled while the instance was starting: the instance is ours to remove.
      await ctx.records.update(r.name, { instanceId });
      log.info({ instance: instanceId }, "runner was cancelled during launch; destroying the new instance");
      await launcher.destroy(instanceId).catch((err) => log.warn({ err: errorMessage(err) }, "destroy after cancel failed; the orphan sweep will retry"));
      return { kind: "cancelled" };
    }
    ctx.metrics.timeToRunning.observe({ platform: r.platform }, (now.getTime() - Date.parse(r.createdAt)) / 1000);
    return { kind: "running" };
  } catch (err) {
    ctx.metrics.launchDuration.observe({ platform: r.platform, outcome: "error" }, (ctx.now().getTime() - started) / 1000);
    const msg = errorMessage(err);
    const current = (await ctx.records.store.getRunner(r.name)) ?? rec;
    if (current.state !== "launching") return { kind: "cancelled" };
    if (current.registration === "ephemeral" && current.forgejoRunnerId !== undefined) {
      await ctx.forgejo.deleteRunner(current.scope, current.forgejoRunnerId).catch((e) =>
        log.warn({ err: errorMessage(e) }, "could not delete the unused Forgejo registration; the stale-registration sweep will retry"),
      );
    }
    const withinDeadline = ctx.now().getTime() < Date.parse(current.queueDeadline);
    if (isRetryable(err) && attempt < max && withinDeadline) {
      const delayMs = retryDelayMs(attempt);
      await ctx.records.transition(current, ["launching"], "pending", `launch attempt ${attempt}/${max} failed: ${msg}; retrying in ${formatDuration(delayMs)}`);
      return { kind: "retry", delayMs };
    }
    await finishRunner(ctx, current, { to: "failed", reason: `launch failed (attempt ${attempt}/${max}): ${msg}` });
    return { kind: "failed" };
  }
}
