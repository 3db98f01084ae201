import type { RunnerRecord } from "../store/types.js";
import type { DispatcherContext } from "./context.js";

/**
 * Whether Forgejo shows the runner taking a job right now: its ephemeral registration by id, or a
 * token-mode registration by name in the scope's runner list (Forgejo >= 15, Gitea). A runner not
 * registered (yet, or any more) is taking nothing. Throws when Forgejo cannot be asked.
 */
export async function runnerTakingJob(ctx: Pick<DispatcherContext, "forgejo">, r: RunnerRecord): Promise<boolean> {
  const registered =
    r.registration === "ephemeral" && r.forgejoRunnerId !== undefined
      ? await ctx.forgejo.getRunner(r.scope, r.forgejoRunnerId)
      : (await ctx.forgejo.listRunners(r.scope)).find((x) => x.name === r.name);
  return registered?.status === "active" || registered?.busy === true;
}
