import type { RunnerOutcome } from "../api/states.js";
import type { RunnerRecord } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";

export type Outcome = RunnerOutcome;

/** The finishing reason names where the runner is headed, for operators reading it meanwhile. */
const INTENT: Record<Outcome, string> = { failed: "failing: ", done: "finishing: " };

/**
 * Where a finishing runner is headed: its recorded outcome, chosen as it entered finishing, so a
 * finish interrupted by a crash completes the same way. A record without one ends done.
 */
export function outcomeOf(r: RunnerRecord): Outcome {
  return r.outcome ?? "done";
}

/** The reason a runner ends with: the finishing reason without its intent. */
function finalReason(r: RunnerRecord, to: Outcome): string {
  const intent = INTENT[to];
  return r.reason.startsWith(intent) ? r.reason.slice(intent.length) : r.reason;
}

/**
 * Ends a runner: record the intent, destroy its instance, delete a Forgejo registration that was
 * never consumed, record the outcome. Safe to call again after any failure or crash: a step that
 * fails leaves the runner in `finishing` and the supervisor calls this again on its next tick.
 */
export async function finishRunner(
  ctx: DispatcherContext,
  r: RunnerRecord,
  outcome?: { to: Outcome; reason: string },
): Promise<RunnerRecord | undefined> {
  let rec: RunnerRecord | undefined = r;
  if (r.state !== "finishing") {
    if (!outcome) throw new Error("finishRunner needs an outcome for a runner that is not finishing");
    const from = r.state === "pending" ? (["pending"] as const) : (["launching", "running"] as const);
    rec = await ctx.records.transition(r, from, "finishing", `${INTENT[outcome.to]}${outcome.reason}`, { outcome: outcome.to });
    if (!rec) return undefined; // someone else moved it; they own the next step
  }
  const log = ctx.logger.child({ runner: rec.name, instance: rec.instanceId });

  if (rec.instanceId) {
    const launcher = ctx.launchers[rec.platform];
    try {
      if (!launcher) throw new Error(`no launcher for platform ${rec.platform}`);
      await launcher.destroy(rec.instanceId);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "destroying the instance failed; will retry on the next supervision tick");
      return rec;
    }
  }

  if (rec.registration === "ephemeral" && rec.forgejoRunnerId !== undefined) {
    try {
      await ctx.forgejo.deleteRunner(rec.scope, rec.forgejoRunnerId);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "deleting the Forgejo runner registration failed; will retry on the next supervision tick");
      return rec;
    }
  }

  const to = outcomeOf(rec);
  return ctx.records.transition(rec, ["finishing"], to, finalReason(rec, to), { finishedAt: ctx.now().toISOString() });
}
