import type { Scope } from "../forgejo/scope.js";
import { scopeKey } from "../forgejo/scope.js";
import { INSTANCE_HOLDING_STATES } from "../api/states.js";
import { errorMessage } from "../shared/error-message.js";
import { Sightings } from "../shared/sightings.js";
import type { DispatcherContext } from "./context.js";

/**
 * Removes offline Forgejo runner registrations that carry our name prefix and belong to no live
 * runner (left by crashes, by token-mode runners, or by instances that died before connecting).
 * Only where the server has the runners API (Forgejo >= 15); two sightings before deleting.
 */
export class RegistrationSweep {
  private readonly sightings = new Sightings();
  /**
   * Scopes that had live runners, kept until they hold no registration of ours: a token-mode
   * runner's own registration outlives its record, and once the record is terminal its scope
   * would otherwise never be looked at again.
   */
  private readonly scopes = new Map<string, Scope>();
  private seeded = false;

  constructor(private readonly ctx: DispatcherContext) {}

  async run(): Promise<number> {
    const { ctx } = this;
    let info;
    try {
      info = await ctx.creds.serverInfo();
    } catch {
      return 0;
    }
    if (!info.runnersApi) return 0;
    const live = await ctx.records.store.listRunnersWithoutHistory({ states: [...INSTANCE_HOLDING_STATES, "pending"] });
    const liveNames = new Set(live.map((r) => r.name));
    const current = new Map<string, Scope>([[scopeKey(ctx.config.forgejo.default_scope), ctx.config.forgejo.default_scope]]);
    for (const r of live) current.set(scopeKey(r.scope), r.scope);
    for (const [key, scope] of current) this.scopes.set(key, scope);
    // After a restart the in-memory scopes are gone; the records (kept for dispatcher.retention)
    // still say where our runners were registered.
    if (!this.seeded) {
      this.seeded = true;
      for (const r of await ctx.records.store.listRunnersWithoutHistory({ limit: 5000 })) this.scopes.set(scopeKey(r.scope), r.scope);
    }
    const prefix = ctx.config.runner.name_prefix;
    let deleted = 0;
    const seen = new Set<string>();
    for (const [key, scope] of [...this.scopes]) {
      let runners;
      try {
        runners = await ctx.forgejo.listRunners(scope);
      } catch (err) {
        ctx.logger.debug({ scope: key, err: errorMessage(err) }, "could not list Forgejo runners for the stale-registration sweep");
        continue;
      }
      if (!current.has(key) && !runners.some((fr) => fr.name.startsWith(prefix))) this.scopes.delete(key);
      for (const fr of runners) {
        if (!fr.name.startsWith(prefix) || fr.status !== "offline" || liveNames.has(fr.name)) continue;
        const id = `${key}#${fr.id}`;
        seen.add(id);
        if (!this.sightings.see(id)) continue;
        try {
          await ctx.forgejo.deleteRunner(scope, fr.id);
          deleted += 1;
          ctx.logger.info({ scope: key, forgejo_runner: fr.id, runner: fr.name }, "deleted a stale offline runner registration");
        } catch (err) {
          ctx.logger.warn({ scope: key, forgejo_runner: fr.id, err: errorMessage(err) }, "could not delete a stale runner registration");
        }
        this.sightings.forget(id);
      }
    }
    this.sightings.keepOnly(seen);
    return deleted;
  }
}
