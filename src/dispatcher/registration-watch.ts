import { scopeKey } from "../forgejo/scope.js";
import type { Scope } from "../forgejo/scope.js";
import type { RunnerRecord } from "../store/types.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";

/** How many successive listings must agree that a registration is gone. */
const CONFIRMATIONS = 2;

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
  private readonly misses = new Map<string, number>();

  constructor(private readonly ctx: DispatcherContext) {}

  async consumed(live: readonly RunnerRecord[]): Promise<Set<string>> {
    const result = new Set<string>();
    const watched = live.filter(
      (r) => WATCHED_PLATFORMS.has(r.platform) && r.state === "running" && r.registration === "ephemeral" && r.forgejoRunnerId !== undefined,
    );
    const names = new Set(watched.map((r) => r.name));
    for (const name of [...this.misses.keys()]) if (!names.has(name)) this.misses.delete(name);
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
          this.misses.delete(r.name);
          continue;
        }
        const n = (this.misses.get(r.name) ?? 0) + 1;
        this.misses.set(r.name, n);
        if (n < CONFIRMATIONS) continue;
        try {
          if ((await this.ctx.forgejo.getRunner(scope, r.forgejoRunnerId as number)) === undefined) {
            this.misses.delete(r.name);
            result.add(r.name);
          } else {
            this.misses.delete(r.name);
          }
        } catch (err) {
          this.ctx.logger.debug({ runner: r.name, err: errorMessage(err) }, "could not confirm the registration is gone; not judged this tick");
        }
      }
    }
    return result;
  }
}
