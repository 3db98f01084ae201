import { scopeKey } from "../forgejo/scope.js";
import type { Scope } from "../forgejo/scope.js";
import type { RunnerRecord } from "../store/types.js";
import { errorMessage } from "../shared/error-message.js";
import { Sightings } from "../shared/sightings.js";
import type { DispatcherContext } from "./context.js";

/**
 * Platforms whose instances do not end with their job: Windows (`nsc create` + a scheduled task)
 * and macOS (whose `nsc create` fallback keeps the machine). Linux containers end with their job
 * (TERMINATE_ON_EXIT), so watching them would only add Forgejo calls.
 */
const WATCHED_PLATFORMS = new Set<RunnerRecord["platform"]>(["windows", "macos"]);

/**
 * Watches the Forgejo registrations of running ephemeral runners: Forgejo deletes one as soon as
 * its job has a final result (docs/upstream-contracts.md#ephemeral-runners), which is the only
 * end-of-job signal for instances that do not end with their job. One runner-list call per scope
 * per tick; a failed listing judges nothing; a registration must be missing from two listings in a
 * row, and then a direct GET must answer 404 (a paged listing can skip a runner while others come
 * and go).
 */
export class RegistrationWatch {
  /** Runners whose registration successive listings missed (two before a direct GET is asked). */
  private readonly misses = new Sightings();

  constructor(private readonly ctx: DispatcherContext) {}

  async consumed(live: readonly RunnerRecord[]): Promise<Set<string>> {
    const result = new Set<string>();
    const watched = live.filter(
      (r) =>
        WATCHED_PLATFORMS.has(r.platform) && r.state === "running" && r.registration === "ephemeral" && r.forgejoRunnerId !== undefined,
    );
    this.misses.keepOnly(watched.map((r) => r.name));
    if (watched.length === 0) return result;
    try {
      if (!(await this.ctx.creds.serverInfo()).runnersApi) return result;
    } catch {
      return result;
    }
    const byScope = new Map<string, { scope: Scope; runners: RunnerRecord[] }>();
    for (const r of watched) {
      const key = scopeKey(r.scope);
      const group = byScope.get(key) ?? { scope: r.scope, runners: [] };
      group.runners.push(r);
      byScope.set(key, group);
    }
    for (const [key, { scope, runners }] of byScope) {
      let ids: Set<number>;
      try {
        ids = new Set((await this.ctx.forgejo.listRunners(scope)).map((fr) => fr.id));
      } catch (err) {
        this.ctx.logger.debug({ scope: key, err: errorMessage(err) }, "could not list Forgejo runners; registrations not judged this tick");
        continue;
      }
      for (const r of runners) {
        if (ids.has(r.forgejoRunnerId as number)) {
          this.misses.forget(r.name);
          continue;
        }
        if (!this.misses.see(r.name)) continue;
        try {
          const gone = (await this.ctx.forgejo.getRunner(scope, r.forgejoRunnerId as number)) === undefined;
          this.misses.forget(r.name);
          if (gone) result.add(r.name);
        } catch (err) {
          this.ctx.logger.debug(
            { runner: r.name, err: errorMessage(err) },
            "could not confirm the registration is gone; not judged this tick",
          );
        }
      }
    }
    return result;
  }
}
