import type { Logger } from "pino";
import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import type { ForgejoApi } from "../forgejo/types.js";
import type { Metrics } from "../http/metrics.js";
import { isTransientForgejoError } from "../forgejo/errors.js";
import { LaunchError } from "../namespace/launcher.js";
import type { Launcher } from "../namespace/launcher.js";
import type { Platform } from "../store/types.js";
import type { CredentialSource } from "./credentials.js";
import type { Records } from "./records.js";

/** What the lifecycle steps (launch, supervise, finish, recover) share. */
export interface DispatcherContext {
  config: DispatcherConfig;
  records: Records;
  forgejo: ForgejoApi;
  creds: CredentialSource;
  launchers: Partial<Record<Platform, Launcher>>;
  logger: Logger;
  metrics: Metrics;
  now: () => Date;
  /**
   * Whether this replica may act (launch, supervise, recover, sweep): it holds the lease. Absent
   * means always (one replica). Checked right before acting, never cached.
   */
  acting?: () => boolean;
}

/** Whether this replica holds the lease now (always, without replicas). */
export function isActing(ctx: Pick<DispatcherContext, "acting">): boolean {
  return ctx.acting?.() ?? true;
}

export { errorMessage } from "../shared/error-message.js";

/**
 * Whether a failed launch attempt deserves another: a LaunchError that says so (capacity,
 * transient), or a transient Forgejo error (5xx, 429, timeouts, no connection) from getting the
 * runner's credentials. Anything else (a bug, a refused request) fails the runner.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof LaunchError) return err.retryable;
  return isTransientForgejoError(err);
}
