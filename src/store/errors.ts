import { HttpError } from "../http/errors.js";
import { errorMessage } from "../shared/error-message.js";

/** How long clients are told to wait (Retry-After) while the state database cannot be used. */
export const STATE_RETRY_AFTER_SECONDS = 5;

/**
 * The state database cannot be used right now (locked by another process, disk full, read-only,
 * I/O errors). It is an HttpError so every API answers 503 with Retry-After through the one error
 * handler; the dispatcher's own writes wait and retry instead (Records.durably).
 */
/** How a StateUnavailableError's advice ends while the dispatcher runs; at start-up, src/bin/daemon-main.ts says what happens instead. */
export const STATE_RETRIES = "the dispatcher keeps retrying by itself";

export class StateUnavailableError extends HttpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(503, "state_unavailable", message, undefined, { "retry-after": String(STATE_RETRY_AFTER_SECONDS) });
    this.name = "StateUnavailableError";
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** The state database cannot be opened or used as it is; the message says what to change. */
export class StateDatabaseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StateDatabaseError";
  }
}

/** createDispatch refused a dispatch: its pending runners would overfill the queue (CreateDispatchOptions.maxPending). */
export class QueueFullError extends Error {
  constructor(
    /** Runners pending when the dispatch was refused. */
    readonly pending: number,
    readonly limit: number,
  ) {
    super(`the launch queue is full (${pending} runners pending, at most ${limit})`);
    this.name = "QueueFullError";
  }
}

/** SQLite's "someone else holds the lock" codes: worth waiting for (asynchronously). */
export function isSqliteBusy(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** The `code` better-sqlite3 puts on its errors (SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE …). */
export function sqliteCode(err: unknown): string | undefined {
  const code: unknown = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/**
 * The StateUnavailableError for a SQLite failure that is about the database file or its disk
 * rather than about the statement; undefined for programming errors (constraints, SQL, misuse),
 * which stay what they are.
 */
export function stateUnavailable(err: unknown, path: string, waitedMs: number): StateUnavailableError | undefined {
  const code = sqliteCode(err);
  if (code === undefined || !code.startsWith("SQLITE_")) return undefined;
  const detail = errorMessage(err);
  if (isSqliteBusy(code)) {
    return new StateUnavailableError(
      `state database ${path} is locked by another process (${code}) and stayed locked for ${Math.round(waitedMs / 100) / 10}s; ` +
        `end what holds it (a second dispatcher on the same file, an open sqlite3 transaction, a backup tool); ${STATE_RETRIES}`,
      { cause: err },
    );
  }
  if (code === "SQLITE_FULL") {
    return new StateUnavailableError(
      `state database ${path} cannot be written: the disk is full (${code}); free space on its file system; ${STATE_RETRIES}`,
      { cause: err },
    );
  }
  if (code.startsWith("SQLITE_READONLY") || code === "SQLITE_PERM" || code === "SQLITE_CANTOPEN" || code === "SQLITE_AUTH") {
    return new StateUnavailableError(
      `state database ${path} cannot be written (${code}: ${detail}); make the file, its -wal and -shm files and its directory writable by this user; ${STATE_RETRIES}`,
      { cause: err },
    );
  }
  if (
    code.startsWith("SQLITE_IOERR") ||
    code === "SQLITE_NOMEM" ||
    code === "SQLITE_PROTOCOL" ||
    code === "SQLITE_CORRUPT" ||
    code === "SQLITE_NOTADB"
  ) {
    return new StateUnavailableError(
      `state database ${path} failed (${code}: ${detail}); check the disk and the file system it is on; ${STATE_RETRIES}`,
      { cause: err },
    );
  }
  return undefined;
}
