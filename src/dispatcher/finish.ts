import { LIVE_STATES } from "../store/types.js";
import type { RunnerRecord } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";

export type Outcome = "done" | "failed";

// The finishing reason carries the final outcome, so a finish interrupted by a crash completes the same way.
const FAILING = "failing: ";
const FINISHING = "finishing: ";

export function outcomeOf(r: RunnerRecord): Outcome {
  return r.reason.startsWith(FAILING) ? "failed" : "done";
}

/**
 * Ends a runner: record the intent, destroy its instance, delete a Forgejo registration that was
 * never consumed, record the outcome. Safe to call again after any failure or crash: a step that
 * fails leaves the runner in `finishing` and the supervisor calls this again on its next tick.
 */
export async function finishRunner(ctx: DispatcherContext, r: RunnerRecord, outcome?: { to: Outcome; reason: string }): Promise<RunnerRecord | undefined> {
  let rec: RunnerRecord | undefined = r;
  if (r.state !== "finishing") {
    if (!outcome) throw new Error("finishRunner needs an outcome for a runner that is not finishing");
    const from = r.state === "pending" ? (["pending"] as const) : LIVE_STATES.filter((s) => s !== "finishing");
    rec = await ctx.records.transition(r, from, "finishing", `${outcome.to === "failed" ? FAILING : FINISHING}${outcome.reason}`);
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
  const final = rec.reason.slice(rec.reason.indexOf(": ") + 2);
  return ctx.records.transition(rec, ["finishing"], to, final, { finishedAt: ctx.now().toISOString() });
}
