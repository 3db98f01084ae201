import type { Logger } from "../http/logger.js";
import type { StateUnavailableError } from "./errors.js";

/** While writes succeed, /readyz trusts the last one this long before it probes again. */
export const TRUST_LAST_WRITE_MS = 30_000;

/**
 * Whether the store's writes work, as its last writes showed: logs the first failure and the
 * recovery once each, and tells writeProblem (for /readyz) when a probe write is needed.
 */
export class WriteHealth {
  private failure: StateUnavailableError | undefined;
  private failingSince: number | undefined;
  private lastOk = 0;

  constructor(
    /** The database, as logs name it (a path, or a URL without its password). */
    private readonly where: Record<string, unknown>,
    private readonly logger?: Logger | undefined,
  ) {}

  succeeded(): void {
    this.lastOk = Date.now();
    if (!this.failure) return;
    this.logger?.info(
      { ...this.where, failedForMs: Date.now() - (this.failingSince ?? Date.now()) },
      "state database accepts writes again",
    );
    this.failure = undefined;
    this.failingSince = undefined;
  }

  failed(err: StateUnavailableError): void {
    if (!this.failure) {
      this.failingSince = Date.now();
      this.logger?.error(
        { ...this.where, err: err.message },
        "state database cannot be written; API requests get 503 and the dispatcher retries its records",
      );
    }
    this.failure = err;
  }

  /** True when the last write succeeded recently enough that /readyz need not probe. */
  trusted(): boolean {
    return !this.failure && Date.now() - this.lastOk < TRUST_LAST_WRITE_MS;
  }
}
