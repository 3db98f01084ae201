import { errorMessage } from "../../shared/error-message.js";
import pg from "pg";
import type { Pool, PoolClient } from "pg";
import { NotLeaderError } from "../../ha/gate.js";
import type { Logger } from "../../http/logger.js";
import { StateDatabaseError, StateUnavailableError } from "../errors.js";
import { SchemaTooNewError } from "../migrations.js";
import {
  checkQueue,
  checkState,
  isoTimestamp,
  patchUpdate,
  transitionUpdate,
  rowToDispatch,
  rowToRunner,
  rowToRunnerFields,
  runnerListClauses,
  runnerRowsOf,
} from "../rows.js";
import type { DispatchRow, RunnerRow } from "../rows.js";
import { RUNNER_COLUMNS } from "../rows.js";
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
  Transition,
  WriteFence,
} from "../types.js";
import { WriteHealth } from "../write-health.js";
import { postgresTarget } from "./postgres-config.js";
import type { PostgresOptions, PostgresTarget } from "./postgres-config.js";
import { isRetryableConflict, postgresUnavailable, sqlState } from "./postgres-errors.js";
import { migratePostgres } from "./postgres-migrations.js";
import {
  APPEND_TRANSITION,
  DISPATCH_LOCK,
  FENCE_REFUSED,
  INSERT_DISPATCH,
  COUNT_PENDING,
  PG_DIALECT,
  PROBE_WRITE,
  PRUNE,
  SELECT_DISPATCHES,
  SELECT_DISPATCHES_WITH_RUNNERS,
  SELECT_RUNNERS,
  SELECT_RUNNER_FIELDS,
  dispatchLockKey,
  fenceAndCommit,
  insertFirstTransitions,
  insertRunners,
} from "./postgres-sql.js";

type Queryable = Pick<PoolClient, "query">;
type DispatchRowWithNames = DispatchRow & { runner_names: string[] };
type RunnerRowWithHistory = RunnerRow & { history: Transition[] };

/** A transaction that lost a serialization race or a deadlock is run again, this many times at most. */
const CONFLICT_ATTEMPTS = 5;

export interface PostgresStoreOptions extends PostgresOptions {
  logger?: Logger | undefined;
}

/** What a store and its fenced views share: whether it is closed, and how its writes fare. */
interface SharedState {
  closed: boolean;
  health: WriteHealth;
}

/** A write of a fenced view: the lease it needs, and what it is (for the NotLeaderError). */
interface Fencing {
  fence: WriteFence;
  what: string;
}

async function readDispatch(db: Queryable, where: string, value: string): Promise<DispatchRecord | undefined> {
  const { rows } = await db.query<DispatchRowWithNames>(`${SELECT_DISPATCHES} WHERE ${where} = $1`, [value]);
  const row = rows[0];
  return row ? rowToDispatch(row, row.runner_names) : undefined;
}

async function readRunners(db: Queryable, clauses: string, params: unknown[]): Promise<RunnerRecord[]> {
  const { rows } = await db.query<RunnerRowWithHistory>(`${SELECT_RUNNERS}${clauses}`, params);
  return rows.map((row) => rowToRunner(row, row.history));
}

async function readRunner(db: Queryable, name: string): Promise<RunnerRecord | undefined> {
  return (await readRunners(db, " WHERE name = $1", [name]))[0];
}

/** A dispatch and its runners (created: false), read in one statement. */
async function readDispatchWithRunners(db: Queryable, where: string, value: string): Promise<CreateDispatchResult | undefined> {
  const { rows } = await db.query<DispatchRow & { runners: (RunnerRowWithHistory & { dispatch_index: number })[] }>(
    `${SELECT_DISPATCHES_WITH_RUNNERS} WHERE ${where} = $1`,
    [value],
  );
  const row = rows[0];
  if (!row) return undefined;
  const dispatch = rowToDispatch(
    row,
    row.runners.map((r) => r.name),
  );
  return { created: false, dispatch, runners: row.runners.map((r) => rowToRunner(r, r.history)) };
}

const existing = (db: Queryable, key: string) => readDispatchWithRunners(db, "d.idempotency_key", key);

/**
 * The Store on PostgreSQL through a node-postgres pool, for several dispatcher replicas on one
 * database. Every write is one transaction; compare-and-set takes the runner's row lock
 * (SELECT … FOR UPDATE); the idempotency key is settled by the unique index (ON CONFLICT), and
 * counting the queue and inserting runners happen under one advisory lock per schema, so replicas
 * never overfill the queue together. Reads are single
 * statements (one snapshot each). Failures of the server or the connection become
 * StateUnavailableError (503 for API clients, retried by Records.durably), as a locked or full
 * disk does for SQLite; messages name the database without its password. A fenced view
 * (`fenced`) commits each write only if this replica's lease row is still in force (fenceAndCommit).
 */
export class PostgresStore implements Store {
  private readonly shared: SharedState;

  constructor(
    private readonly pool: Pool,
    readonly target: PostgresTarget,
    private readonly logger?: Logger | undefined,
    /** Set on a fenced view: every write checks this lease as it commits. */
    private readonly fence?: WriteFence | undefined,
    shared?: SharedState,
  ) {
    this.shared = shared ?? { closed: false, health: new WriteHealth({ database: target.display }, logger) };
  }

  private get health(): WriteHealth {
    return this.shared.health;
  }

  fenced(fence: WriteFence): PostgresStore {
    return new PostgresStore(this.pool, this.target, this.logger, fence, this.shared);
  }

  /** The fencing of a write named `what`, on a fenced view. */
  private fencing(what: string): Fencing | undefined {
    return this.fence && { fence: this.fence, what };
  }

  private unavailable(err: unknown): unknown {
    return postgresUnavailable(err, this.target.display) ?? err;
  }

  /** One statement on any pooled connection. */
  private async read<T>(step: (db: Queryable) => Promise<T>): Promise<T> {
    if (this.shared.closed) throw new StateDatabaseError(`state database ${this.target.display} is closed`);
    try {
      return await step(this.pool);
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  /**
   * A write transaction, run again when it lost a serialization race or a deadlock. With `fencing`
   * it commits only while the lease is in force (NotLeaderError otherwise, nothing written).
   */
  private async write<T>(fencing: Fencing | undefined, step: (db: PoolClient) => Promise<T>): Promise<T> {
    if (this.shared.closed) throw new StateDatabaseError(`state database ${this.target.display} is closed`);
    // Not held by the local deadline: no need to ask the database.
    if (fencing && fencing.fence.epoch() === undefined) throw new NotLeaderError(fencing.what);
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.transaction(step, fencing);
        this.health.succeeded();
        return result;
      } catch (err) {
        if (isRetryableConflict(err) && attempt < CONFLICT_ATTEMPTS) continue;
        const unavailable = postgresUnavailable(err, this.target.display);
        if (!unavailable) throw err;
        this.health.failed(unavailable);
        throw unavailable;
      }
    }
  }

  private async transaction<T>(step: (db: PoolClient) => Promise<T>, fencing?: Fencing): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    // A connection lost while checked out also emits "error" on the client; unheard, it would end the process.
    const onError = (err: Error) => (broken = err);
    client.on("error", onError);
    try {
      await client.query("BEGIN");
      const result = await step(client);
      if (fencing) await commitFenced(client, fencing);
      else await client.query("COMMIT");
      return result;
    } catch (err) {
      // A connection that failed mid-transaction is dropped rather than handed out again.
      if (postgresUnavailable(err, this.target.display)) broken = err as Error;
      else await client.query("ROLLBACK").catch((e: unknown) => (broken = e as Error));
      throw err;
    } finally {
      client.off("error", onError);
      client.release(broken);
    }
  }

  async writeProblem(): Promise<string | undefined> {
    if (this.health.trusted()) return undefined;
    try {
      await this.write(undefined, (db) => db.query(PROBE_WRITE));
      return undefined;
    } catch (err) {
      return errorMessage(err);
    }
  }

  async createDispatch(
    dispatch: DispatchRecord,
    runners: RunnerRecord[],
    options: CreateDispatchOptions = {},
  ): Promise<CreateDispatchResult> {
    const createdAt = isoTimestamp(dispatch.createdAt, `dispatch ${dispatch.id} createdAt`);
    const rows = runnerRowsOf(dispatch, runners);
    const key = dispatch.idempotencyKey;
    // A retry of a recorded dispatch is answered by one read; a miss is settled by the insert.
    const seen = key === undefined ? undefined : await this.read((db) => existing(db, key));
    if (seen) return seen;
    let recorded: boolean;
    try {
      recorded = await this.write(this.fencing(`recording dispatch ${dispatch.id}`), async (db) => {
        const inserted = await db.query(INSERT_DISPATCH, [
          dispatch.id,
          key ?? null,
          dispatch.requestHash,
          JSON.stringify(dispatch.request ?? null),
          createdAt,
        ]);
        if (inserted.rowCount === 0) return false;
        if (rows.length === 0) return true;
        // Taken after the key is settled, so a retry waiting on the key never waits here too.
        await db.query(DISPATCH_LOCK, [dispatchLockKey(this.target.schema)]);
        // Refusing rolls back the dispatch row with everything else.
        checkQueue((await db.query<{ n: number }>(COUNT_PENDING)).rows[0]?.n ?? 0, rows, options.maxPending);
        await db.query(
          insertRunners(rows.length),
          rows.flatMap((row) => RUNNER_COLUMNS.map((c) => row[c])),
        );
        await db.query(
          insertFirstTransitions(rows.length),
          rows.flatMap((row) => [row.name, row.created_at, row.state, row.reason]),
        );
        return true;
      });
    } catch (err) {
      // The key cannot conflict (ON CONFLICT); a dispatch id or a runner name can. The server names
      // the constraint in the message and the values only in the detail, which is left out.
      if (sqlState(err) !== "23505") throw err;
      throw new StateDatabaseError(
        `cannot record dispatch ${dispatch.id}: ${errorMessage(err)}; dispatch ids and runner names must be unique`,
        { cause: err },
      );
    }
    // What was recorded is read after COMMIT, outside the lock.
    const stored = await this.read((db) => (recorded ? readDispatchWithRunners(db, "d.id", dispatch.id) : existing(db, key as string)));
    // Only pruning could remove it this fast, and pruning never takes a dispatch younger than the retention.
    if (!stored)
      throw new StateDatabaseError(`dispatch ${recorded ? dispatch.id : `with key ${key}`} vanished right after it was recorded`);
    return { ...stored, created: recorded };
  }

  async getDispatch(id: string): Promise<DispatchRecord | undefined> {
    return this.read((db) => readDispatch(db, "d.id", id));
  }

  async getDispatchByKey(key: string): Promise<DispatchRecord | undefined> {
    return this.read((db) => readDispatch(db, "d.idempotency_key", key));
  }

  async getRunner(name: string): Promise<RunnerRecord | undefined> {
    return this.read((db) => readRunner(db, name));
  }

  async listRunners(filter: RunnerFilter = {}): Promise<RunnerRecord[]> {
    const { clauses, params } = runnerListClauses(filter, PG_DIALECT);
    return this.read((db) => readRunners(db, clauses, params));
  }

  async listRunnersWithoutHistory(filter: RunnerFilter = {}): Promise<RunnerFields[]> {
    const { clauses, params } = runnerListClauses(filter, PG_DIALECT, "listRunnersWithoutHistory");
    const { rows } = await this.read((db) => db.query<RunnerRow>(`${SELECT_RUNNER_FIELDS}${clauses}`, params));
    return rows.map(rowToRunnerFields);
  }

  async countRunners(states: readonly RunnerState[]): Promise<number> {
    for (const s of states) checkState(s, "countRunners states");
    const { rows } = await this.read((db) =>
      db.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM runners WHERE ${PG_DIALECT.inJsonList("state", "$1")}`, [
        JSON.stringify(states),
      ]),
    );
    return rows[0]?.n ?? 0;
  }

  async transition(
    name: string,
    from: readonly RunnerState[],
    to: RunnerState,
    reason: string,
    patch: RunnerPatch = {},
    at: Date = new Date(),
  ): Promise<RunnerRecord | undefined> {
    const { when, set, values } = transitionUpdate(from, to, reason, patch, at, PG_DIALECT.placeholder);
    const sql = `UPDATE runners SET ${set} WHERE name = $${values.length + 1}`;
    return this.write(this.fencing(`recording runner ${name} -> ${to}`), async (db) => {
      // The row lock makes the check and the change one step: a concurrent transition waits, then sees the new state.
      const current = await db.query<{ state: RunnerState }>("SELECT state FROM runners WHERE name = $1 FOR UPDATE", [name]);
      const state = current.rows[0]?.state;
      if (state === undefined || !from.includes(state)) return undefined;
      await db.query(sql, [...values, name]);
      await db.query(APPEND_TRANSITION, [name, when, state, to, reason]);
      return readRunner(db, name);
    });
  }

  async update(name: string, patch: RunnerPatch, at: Date = new Date()): Promise<RunnerRecord | undefined> {
    const { set, values } = patchUpdate(patch, at, PG_DIALECT.placeholder);
    const sql = `UPDATE runners SET ${set} WHERE name = $${values.length + 1}`;
    return this.write(this.fencing(`updating runner ${name}`), async (db) => {
      if ((await db.query(sql, [...values, name])).rowCount !== 1) return undefined;
      return readRunner(db, name);
    });
  }

  async pruneFinished(before: Date): Promise<number> {
    const cutoff = isoTimestamp(before, "pruneFinished before");
    return this.write(this.fencing("pruning finished runner records"), async (db) => {
      await db.query(PRUNE[0], [cutoff]);
      const removed = (await db.query(PRUNE[1], [cutoff])).rowCount ?? 0;
      await db.query(PRUNE[2], [cutoff]);
      return removed;
    });
  }

  async close(): Promise<void> {
    if (this.shared.closed) return;
    this.shared.closed = true;
    await this.pool.end();
  }
}

/**
 * Commits only if the lease is in force now (fenceAndCommit: checked by the database, in the
 * message that commits). Throws NotLeaderError otherwise; the caller rolls back.
 */
async function commitFenced(client: PoolClient, { fence, what }: Fencing): Promise<void> {
  const epoch = fence.epoch();
  if (epoch === undefined) throw new NotLeaderError(what);
  try {
    await client.query(fenceAndCommit(fence.name, fence.holder, epoch));
  } catch (err) {
    if (sqlState(err) !== FENCE_REFUSED) throw err;
    throw new NotLeaderError(`${what} (${errorMessage(err)}; this replica held epoch ${epoch})`, { cause: err });
  }
}

/** A pool whose idle connections may die (server restart) without taking the process down. */
function createPool(target: PostgresTarget, statementTimeoutMs: number, logger: Logger | undefined): Pool {
  const pool = new pg.Pool({
    ...target.pool,
    keepAlive: true,
    // The server cancels a slow statement; this catches a connection that stopped answering at all.
    query_timeout: statementTimeoutMs + (target.pool.connectionTimeoutMillis ?? 0) + 1_000,
    // A transaction left open by a stuck process must not hold row locks for ever.
    idle_in_transaction_session_timeout: Math.max(60_000, statementTimeoutMs * 2),
  });
  pool.on("error", (err) => {
    logger?.warn(
      { database: target.display, err: postgresUnavailable(err, target.display)?.message ?? err.message },
      "state database: an idle connection failed; it is replaced on next use",
    );
  });
  return pool;
}

/**
 * Connects to the PostgreSQL state database `url` (dispatcher.store) and migrates it to the schema
 * this release knows. Throws SchemaTooNewError, StateUnavailableError (server down or unreachable)
 * or StateDatabaseError (configuration) with a message that names what is wrong, never the password.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const target = postgresTarget(url, options);
  const pool = createPool(target, Number(target.pool.statement_timeout), options.logger);
  try {
    const client = await pool.connect();
    let broken: Error | undefined;
    const onError = (e: Error) => (broken = e);
    client.on("error", onError);
    try {
      const { from, to } = await migratePostgres(client, target.schema, target.display);
      if (from !== to) options.logger?.info({ database: target.display, from, to }, "state database schema migrated");
      options.logger?.debug({ database: target.display, schemaVersion: to }, "state database open");
    } finally {
      client.off("error", onError);
      client.release(broken);
    }
  } catch (err) {
    await pool.end().catch(() => undefined);
    if (err instanceof SchemaTooNewError || err instanceof StateUnavailableError) throw err;
    const unavailable = postgresUnavailable(err, target.display);
    if (unavailable) throw unavailable;
    throw new StateDatabaseError(
      `cannot prepare state database ${target.display} (${sqlState(err) ?? "error"}: ${errorMessage(err)}); check dispatcher.store`,
      { cause: err },
    );
  }
  return new PostgresStore(pool, target, options.logger);
}
