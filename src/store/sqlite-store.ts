import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import type { Logger } from "../http/logger.js";
import { errorMessage } from "../shared/error-message.js";
import { StateDatabaseError, isSqliteBusy, sqliteCode, stateUnavailable } from "./errors.js";
import { SchemaTooNewError, migrate } from "./migrations.js";
import { WriteHealth } from "./write-health.js";
import {
  RUNNER_COLUMNS,
  checkState,
  historiesByRunner,
  isoTimestamp,
  patchUpdate,
  transitionUpdate,
  rowToDispatch,
  rowToRunner,
  rowToRunnerFields,
  runnerListClauses,
  runnerRowsOf,
  checkQueue,
} from "./rows.js";
import type { DispatchRow, RunnerRow, SqlDialect, TransitionRow } from "./rows.js";
import { TERMINAL_STATES } from "./types.js";
import type {
  CreateDispatchOptions,
  CreateDispatchResult,
  DispatchRecord,
  RunnerFields,
  RunnerFilter,
  RunnerPatch,
  RunnerRecord,
  RunnerState,
  Store,
} from "./types.js";

export interface SqliteStoreOptions {
  logger?: Logger | undefined;
  /**
   * "full" (default) fsyncs the WAL on every commit, so an accepted dispatch survives a power loss;
   * "normal" survives a crash of the process but may lose the last commits on power loss.
   */
  synchronous?: "full" | "normal" | undefined;
  /**
   * How long a call waits for another process holding the lock before it fails with
   * StateUnavailableError (default 5 s). The wait is asynchronous: SQLite itself only blocks for
   * LOCK_SLICE_MS at a time, so the event loop (health checks, the API) keeps running.
   */
  busyTimeoutMs?: number | undefined;
}

const SQLITE_DIALECT: SqlDialect = {
  placeholder: () => "?",
  inJsonList: (column, ph) => `${column} IN (SELECT value FROM json_each(${ph}))`,
  hasAllLabels: (ph) =>
    `NOT EXISTS (SELECT 1 FROM json_each(${ph}) AS want WHERE want.value NOT IN (SELECT value FROM json_each(runners.labels)))`,
};

/** SQLite's own busy_timeout once open: the longest the event loop may block on a lock at once. */
const LOCK_SLICE_MS = 10;
/** A readiness probe gives up on a lock sooner than a real write does: /readyz must answer quickly. */
const PROBE_LOCK_WAIT_MS = 250;

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export { StateDatabaseError } from "./errors.js";

/**
 * The Store on a SQLite file through better-sqlite3. Every method runs synchronously inside one
 * SQLite transaction, so no other call of this process can interleave with it; writes use
 * BEGIN IMMEDIATE so a second process on the same file waits instead of racing. That wait is
 * asynchronous (`attempt`): a transaction that finds the lock taken is rolled back and tried again
 * after a short pause, up to busyTimeoutMs. Failures that are about the file or its disk become
 * StateUnavailableError (503 for API clients), and the store remembers that writes are failing
 * until one succeeds again (`writeProblem`, for /readyz).
 */
export class SqliteStore implements Store {
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;
  private readonly health: WriteHealth;

  constructor(
    private readonly db: Database.Database,
    readonly path: string,
    private readonly opts: { lockWaitMs: number; logger?: Logger | undefined } = { lockWaitMs: 5_000 },
  ) {
    this.health = new WriteHealth({ path }, opts.logger);
  }

  /**
   * Runs one synchronous database step. While another process holds the lock it is retried with
   * backoff, without blocking the event loop, for up to `lockWaitMs`. File and disk failures
   * become StateUnavailableError; for writes, whether they work is remembered.
   */
  private async attempt<T>(kind: "read" | "write", step: () => T, lockWaitMs = this.opts.lockWaitMs): Promise<T> {
    const started = Date.now();
    for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
      if (this.closed) throw new StateDatabaseError(`state database ${this.path} is closed`);
      try {
        const result = step();
        if (kind === "write") this.health.succeeded();
        return result;
      } catch (err) {
        const waited = Date.now() - started;
        if (isSqliteBusy(sqliteCode(err)) && waited < lockWaitMs) {
          await delay(Math.min(pause, Math.max(1, lockWaitMs - waited)));
          continue;
        }
        const unavailable = stateUnavailable(err, this.path, waited);
        if (!unavailable) throw err;
        if (kind === "write") this.health.failed(unavailable);
        throw unavailable;
      }
    }
  }

  async writeProblem(): Promise<string | undefined> {
    if (this.health.trusted()) return undefined;
    try {
      // A real write that changes nothing: user_version is rewritten with its own value.
      await this.attempt(
        "write",
        () =>
          this.db
            .transaction(() => this.db.pragma(`user_version = ${Number(this.db.pragma("user_version", { simple: true }))}`))
            .immediate(),
        PROBE_LOCK_WAIT_MS,
      );
      return undefined;
    } catch (err) {
      return errorMessage(err);
    }
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private readDispatchRow(row: DispatchRow | undefined): DispatchRecord | undefined {
    if (!row) return undefined;
    const names = (
      this.stmt("SELECT name FROM runners WHERE dispatch_id = ? ORDER BY dispatch_index, name").all(row.id) as { name: string }[]
    ).map((r) => r.name);
    return rowToDispatch(row, names);
  }

  private readDispatchById(id: string): DispatchRecord | undefined {
    return this.readDispatchRow(this.stmt("SELECT * FROM dispatches WHERE id = ?").get(id) as DispatchRow | undefined);
  }

  private readDispatchByKey(key: string): DispatchRecord | undefined {
    return this.readDispatchRow(this.stmt("SELECT * FROM dispatches WHERE idempotency_key = ?").get(key) as DispatchRow | undefined);
  }

  private withHistory(rows: RunnerRow[]): RunnerRecord[] {
    if (rows.length === 0) return [];
    const transitions = this.stmt(
      "SELECT runner, at, from_state, to_state, reason FROM runner_transitions WHERE runner IN (SELECT value FROM json_each(?)) ORDER BY runner, seq",
    ).all(JSON.stringify(rows.map((r) => r.name))) as TransitionRow[];
    const byRunner = historiesByRunner(transitions);
    return rows.map((row) => rowToRunner(row, byRunner.get(row.name) ?? []));
  }

  private readRunner(name: string): RunnerRecord | undefined {
    const row = this.stmt("SELECT * FROM runners WHERE name = ?").get(name) as RunnerRow | undefined;
    return row ? this.withHistory([row])[0] : undefined;
  }

  private readDispatchRunners(dispatchId: string): RunnerRecord[] {
    return this.withHistory(
      this.stmt("SELECT * FROM runners WHERE dispatch_id = ? ORDER BY dispatch_index, name").all(dispatchId) as RunnerRow[],
    );
  }

  private appendTransition(name: string, at: string, from: RunnerState | null, to: RunnerState, reason: string): void {
    this.stmt(
      `INSERT INTO runner_transitions (runner, seq, at, from_state, to_state, reason)
       VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runner_transitions WHERE runner = ?), ?, ?, ?, ?)`,
    ).run(name, name, at, from, to, reason);
  }

  private existing(key: string): CreateDispatchResult | undefined {
    const dispatch = this.readDispatchByKey(key);
    return dispatch ? { created: false, dispatch, runners: this.readDispatchRunners(dispatch.id) } : undefined;
  }

  async createDispatch(
    dispatch: DispatchRecord,
    runners: RunnerRecord[],
    options: CreateDispatchOptions = {},
  ): Promise<CreateDispatchResult> {
    const createdAt = isoTimestamp(dispatch.createdAt, `dispatch ${dispatch.id} createdAt`);
    const rows = runnerRowsOf(dispatch, runners);
    const key = dispatch.idempotencyKey;
    const insertRunner = this.stmt(
      `INSERT INTO runners (${RUNNER_COLUMNS.join(", ")}) VALUES (${RUNNER_COLUMNS.map((c) => `@${c}`).join(", ")})`,
    );
    // The existence check and the inserts run with no await between them and under the write lock.
    const tx = this.db.transaction((): CreateDispatchResult => {
      if (key !== undefined) {
        const found = this.existing(key);
        if (found) return found;
      }
      checkQueue(
        (this.stmt("SELECT COUNT(*) AS n FROM runners WHERE state = 'pending'").get() as { n: number }).n,
        rows,
        options.maxPending,
      );
      this.stmt("INSERT INTO dispatches (id, idempotency_key, request_hash, request, created_at) VALUES (?, ?, ?, ?, ?)").run(
        dispatch.id,
        key ?? null,
        dispatch.requestHash,
        JSON.stringify(dispatch.request ?? null),
        createdAt,
      );
      for (const row of rows) {
        insertRunner.run(row);
        this.appendTransition(row.name, row.created_at, null, row.state as RunnerState, row.reason);
      }
      const stored = this.readDispatchById(dispatch.id);
      if (!stored) throw new StateDatabaseError(`dispatch ${dispatch.id} vanished inside its own transaction`);
      return { created: true, dispatch: stored, runners: this.readDispatchRunners(dispatch.id) };
    });
    return this.attempt("write", () => {
      try {
        return tx.immediate();
      } catch (err) {
        const code = sqliteCode(err);
        // Another writer that did not take the write lock first (a future store, a manual insert) won
        // the race on the key: the UNIQUE constraint decided, so answer with its dispatch.
        if (key !== undefined && code === "SQLITE_CONSTRAINT_UNIQUE") {
          const found = this.db.transaction(() => this.existing(key))();
          if (found) return found;
        }
        if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
          // SQLite names the column, never the values, so the message carries nothing from the request.
          throw new StateDatabaseError(
            `cannot record dispatch ${dispatch.id}: ${(err as Error).message}; dispatch ids and runner names must be unique`,
            { cause: err },
          );
        }
        throw err;
      }
    });
  }

  async getDispatch(id: string): Promise<DispatchRecord | undefined> {
    return this.attempt("read", () => this.db.transaction(() => this.readDispatchById(id))());
  }

  async getDispatchByKey(key: string): Promise<DispatchRecord | undefined> {
    return this.attempt("read", () => this.db.transaction(() => this.readDispatchByKey(key))());
  }

  async getRunner(name: string): Promise<RunnerRecord | undefined> {
    return this.attempt("read", () => this.db.transaction(() => this.readRunner(name))());
  }

  private selectRunners(filter: RunnerFilter): RunnerRow[] {
    const { clauses, params } = runnerListClauses(filter, SQLITE_DIALECT);
    return this.stmt(`SELECT * FROM runners${clauses}`).all(...params) as RunnerRow[];
  }

  async listRunners(filter: RunnerFilter = {}): Promise<RunnerRecord[]> {
    return this.attempt("read", () => this.db.transaction(() => this.withHistory(this.selectRunners(filter)))());
  }

  async listRunnersWithoutHistory(filter: RunnerFilter = {}): Promise<RunnerFields[]> {
    return this.attempt("read", () => this.selectRunners(filter).map(rowToRunnerFields));
  }

  async countRunners(states: readonly RunnerState[]): Promise<number> {
    for (const s of states) checkState(s, "countRunners states");
    const sql = "SELECT COUNT(*) AS n FROM runners WHERE state IN (SELECT value FROM json_each(?))";
    return this.attempt("read", () => (this.stmt(sql).get(JSON.stringify(states)) as { n: number }).n);
  }

  async transition(
    name: string,
    from: readonly RunnerState[],
    to: RunnerState,
    reason: string,
    patch: RunnerPatch = {},
    at: Date = new Date(),
  ): Promise<RunnerRecord | undefined> {
    const { when, set, values } = transitionUpdate(from, to, reason, patch, at, SQLITE_DIALECT.placeholder);
    const sql = `UPDATE runners SET ${set} WHERE name = ? AND ${SQLITE_DIALECT.inJsonList("state", "?")}`;
    const tx = this.db.transaction((): RunnerRecord | undefined => {
      const current = this.stmt("SELECT state FROM runners WHERE name = ?").get(name) as { state: RunnerState } | undefined;
      if (!current || !from.includes(current.state)) return undefined;
      const changed = this.stmt(sql).run(...values, name, JSON.stringify(from)).changes;
      if (changed !== 1) return undefined;
      this.appendTransition(name, when, current.state, to, reason);
      return this.readRunner(name);
    });
    return this.attempt("write", () => tx.immediate());
  }

  async update(name: string, patch: RunnerPatch, at: Date = new Date()): Promise<RunnerRecord | undefined> {
    const { set, values } = patchUpdate(patch, at, SQLITE_DIALECT.placeholder);
    const sql = `UPDATE runners SET ${set} WHERE name = ?`;
    const tx = this.db.transaction((): RunnerRecord | undefined => {
      if (this.stmt(sql).run(...values, name).changes !== 1) return undefined;
      return this.readRunner(name);
    });
    return this.attempt("write", () => tx.immediate());
  }

  async pruneFinished(before: Date): Promise<number> {
    const cutoff = isoTimestamp(before, "pruneFinished before");
    const terminal = JSON.stringify(TERMINAL_STATES);
    const doomed =
      "SELECT name FROM runners WHERE state IN (SELECT value FROM json_each(?)) AND finished_at IS NOT NULL AND finished_at < ?";
    const tx = this.db.transaction((): number => {
      // Explicit rather than relying on ON DELETE CASCADE, which needs foreign_keys on the connection.
      this.stmt(`DELETE FROM runner_transitions WHERE runner IN (${doomed})`).run(terminal, cutoff);
      const removed = this.stmt(`DELETE FROM runners WHERE name IN (${doomed})`).run(terminal, cutoff).changes;
      // Only dispatches older than the cutoff: a dispatch being recorded right now is never empty
      // inside its transaction, but one created with no runners at all should still age out.
      this.stmt(
        "DELETE FROM dispatches WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM runners WHERE runners.dispatch_id = dispatches.id)",
      ).run(cutoff);
      return removed;
    });
    return this.attempt("write", () => tx.immediate());
  }

  /**
   * Itself: one process uses the file (a second one waits for its lock and is refused), and its
   * lease is the single replica's (SoleLease), always held. No lease table to check.
   */
  fenced(): Store {
    return this;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.statements.clear();
    try {
      this.db.pragma("optimize");
    } catch (err) {
      // Only statistics for the query planner; a locked or full disk must not fail the shutdown.
      this.opts.logger?.debug({ path: this.path, err: errorMessage(err) }, "state database: PRAGMA optimize skipped at close");
    } finally {
      this.db.close();
    }
  }
}

function describeOpenError(path: string, err: unknown): StateDatabaseError {
  const code = sqliteCode(err) ?? "error";
  const detail = errorMessage(err);
  if (code === "SQLITE_NOTADB") {
    return new StateDatabaseError(
      `${path} is not a SQLite database; point dispatcher.state_path at the dispatcher's database or at a new file`,
      {
        cause: err,
      },
    );
  }
  if (code === "SQLITE_READONLY" || code.startsWith("SQLITE_READONLY") || code === "SQLITE_CANTOPEN" || code === "SQLITE_PERM") {
    return new StateDatabaseError(
      `cannot open state database ${path} for writing (${code}: ${detail}); make the file and its directory writable by this user or change dispatcher.state_path`,
      { cause: err },
    );
  }
  return new StateDatabaseError(`cannot open state database ${path} (${code}: ${detail}); check dispatcher.state_path`, { cause: err });
}

/**
 * Opens (creating when needed) the SQLite state database at `path` and migrates it to the schema
 * this release knows. Throws StateDatabaseError or SchemaTooNewError with an actionable message.
 */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): SqliteStore {
  const memory = path === ":memory:";
  const full = memory ? path : resolve(path);
  if (!memory) {
    try {
      mkdirSync(dirname(full), { recursive: true, mode: 0o700 });
      // Runner records hold the requests' env values, which may be secrets: only this user may read
      // the file. SQLite gives the -wal and -shm files the database file's permissions.
      closeSync(openSync(full, "a", 0o600));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      throw new StateDatabaseError(
        `cannot create state database ${full} (${code}); create its directory, make it writable by this user, or change dispatcher.state_path`,
        { cause: err },
      );
    }
  }
  let db: Database.Database;
  try {
    db = new Database(full);
  } catch (err) {
    throw describeOpenError(full, err);
  }
  const lockWaitMs = Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000));
  try {
    // busy_timeout first: switching to WAL and migrating need a lock another process may hold.
    // Opening happens before the daemon serves anything, so here SQLite may wait synchronously.
    db.pragma(`busy_timeout = ${lockWaitMs}`);
    const mode = memory ? "memory" : String(db.pragma("journal_mode = WAL", { simple: true }));
    if (!memory && mode.toLowerCase() !== "wal") {
      options.logger?.warn(
        { path: full, journalMode: mode },
        "state database is not in WAL mode (the file system may not support it); concurrent readers will block writers",
      );
    }
    db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    db.pragma("foreign_keys = ON");
    const { from, to } = migrate(db, full);
    if (from !== to) options.logger?.info({ path: full, from, to }, "state database schema migrated");
    options.logger?.debug({ path: full, schemaVersion: to, journalMode: mode }, "state database open");
    // From now on a lock is waited for asynchronously (SqliteStore.attempt), a slice at a time.
    db.pragma(`busy_timeout = ${Math.min(LOCK_SLICE_MS, lockWaitMs)}`);
  } catch (err) {
    db.close();
    if (err instanceof SchemaTooNewError) throw err;
    throw describeOpenError(full, err);
  }
  return new SqliteStore(db, full, { lockWaitMs, logger: options.logger });
}
