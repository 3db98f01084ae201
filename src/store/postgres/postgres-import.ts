import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import pg from "pg";
import { StateDatabaseError } from "../errors.js";
import { LATEST_SCHEMA_VERSION } from "../migrations.js";
import { RUNNER_COLUMNS } from "../rows.js";
import { openSqliteStore } from "../sqlite-store.js";
import { TERMINAL_STATES } from "../types.js";
import { postgresTarget } from "./postgres-config.js";
import type { PostgresOptions } from "./postgres-config.js";
import { postgresUnavailable } from "./postgres-errors.js";
import { PG_LATEST_SCHEMA_VERSION, migratePostgres } from "./postgres-migrations.js";
import { DISPATCH_LOCK, dispatchLockKey, insertRunners } from "./postgres-sql.js";

/** What migrate-store copied (or found in the target, when it refused). */
export interface CopyCounts {
  dispatches: number;
  runners: number;
  transitions: number;
  /** Runners not yet done or failed. */
  live: number;
}

export interface ImportResult {
  counts: CopyCounts;
  /** The target as it may be printed: postgres://user@host:port/database, and the schema. */
  target: string;
  schema: string;
}

type Row = Record<string, unknown>;

const DISPATCH_COLUMNS = ["id", "idempotency_key", "request_hash", "request", "created_at"] as const;
const TRANSITION_COLUMNS = ["runner", "seq", "at", "from_state", "to_state", "reason"] as const;
/** Rows per INSERT: far below PostgreSQL's 65535 parameters for the widest table. */
const BATCH = 500;

/** The target already holds records: migrate-store only fills an empty store. */
export class TargetNotEmptyError extends StateDatabaseError {
  constructor(
    readonly found: CopyCounts,
    target: string,
    schema: string,
  ) {
    super(
      `${target} (schema ${schema}) already holds ${found.dispatches} dispatches and ${found.runners} runners; migrate-store copies only into an empty store, so nothing was copied. ` +
        `Point --to at an empty database, or --schema at a new schema, or empty this one (TRUNCATE runner_transitions, runners, dispatches) if its records are not needed`,
    );
    this.name = "TargetNotEmptyError";
  }
}

/** Every record of the SQLite file, read in one snapshot after migrating it to the latest schema. */
async function readSqlite(path: string): Promise<{ dispatches: Row[]; runners: Row[]; transitions: Row[] }> {
  // Opening would create a missing file: a mistyped path must not copy an empty store.
  if (!existsSync(path))
    throw new StateDatabaseError(`there is no SQLite state database at ${path}; name the dispatcher's dispatcher.state_path file`);
  // Opening migrates the file to the schema this release writes, so the columns match the target's.
  await openSqliteStore(path).close();
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.transaction(() => ({
      dispatches: db.prepare(`SELECT ${DISPATCH_COLUMNS.join(", ")} FROM dispatches ORDER BY created_at, id`).all() as Row[],
      runners: db.prepare(`SELECT ${RUNNER_COLUMNS.join(", ")} FROM runners ORDER BY created_at, name`).all() as Row[],
      transitions: db.prepare(`SELECT ${TRANSITION_COLUMNS.join(", ")} FROM runner_transitions ORDER BY runner, seq`).all() as Row[],
    }))();
  } finally {
    db.close();
  }
}

function valuesSql(columns: readonly string[], count: number, cast: (column: string) => string = () => ""): string {
  const row = (r: number) => `(${columns.map((c, i) => `$${r * columns.length + i + 1}${cast(c)}`).join(", ")})`;
  return Array.from({ length: count }, (_, r) => row(r)).join(", ");
}

async function insertAll(
  client: pg.ClientBase,
  rows: readonly Row[],
  columns: readonly string[],
  sql: (count: number) => string,
): Promise<void> {
  for (let i = 0; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH);
    await client.query(
      sql(batch.length),
      batch.flatMap((row) => columns.map((c) => row[c] ?? null)),
    );
  }
}

async function countTarget(client: pg.ClientBase): Promise<CopyCounts> {
  const { rows } = await client.query<CopyCounts>(`SELECT
    (SELECT COUNT(*)::int FROM dispatches) AS dispatches,
    (SELECT COUNT(*)::int FROM runners) AS runners,
    (SELECT COUNT(*)::int FROM runner_transitions) AS transitions,
    (SELECT COUNT(*)::int FROM runners WHERE state NOT IN (${TERMINAL_STATES.map((t) => `'${t}'`).join(", ")})) AS live`);
  return rows[0] as CopyCounts;
}

/** Copies the records into the (migrated, empty) target in one transaction; refuses a non-empty target. */
async function copyInto(
  client: pg.ClientBase,
  source: Awaited<ReturnType<typeof readSqlite>>,
  display: string,
  schema: string,
): Promise<CopyCounts> {
  await client.query("BEGIN");
  try {
    // Dispatchers on this schema wait while the copy runs, instead of recording beside it.
    await client.query(DISPATCH_LOCK, [dispatchLockKey(schema)]);
    const found = await countTarget(client);
    if (found.dispatches + found.runners + found.transitions > 0) throw new TargetNotEmptyError(found, display, schema);
    await insertAll(
      client,
      source.dispatches,
      DISPATCH_COLUMNS,
      (n) => `INSERT INTO dispatches (${DISPATCH_COLUMNS.join(", ")}) VALUES ${valuesSql(DISPATCH_COLUMNS, n)}`,
    );
    await insertAll(client, source.runners, RUNNER_COLUMNS, insertRunners);
    await insertAll(
      client,
      source.transitions,
      TRANSITION_COLUMNS,
      (n) => `INSERT INTO runner_transitions (${TRANSITION_COLUMNS.join(", ")}) VALUES ${valuesSql(TRANSITION_COLUMNS, n)}`,
    );
    const copied = await countTarget(client);
    await client.query("COMMIT");
    return copied;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/**
 * Copies every dispatch, runner and transition of the SQLite state database at `sqlitePath` into
 * the PostgreSQL store at `url`, row for row, in one transaction. The target is created and
 * migrated first and must hold no records (TargetNotEmptyError). Errors name the databases, never
 * the password: StateUnavailableError (server down), StateDatabaseError, SchemaTooNewError.
 */
export async function importSqliteIntoPostgres(sqlitePath: string, url: string, options: PostgresOptions = {}): Promise<ImportResult> {
  if (LATEST_SCHEMA_VERSION !== PG_LATEST_SCHEMA_VERSION) {
    throw new StateDatabaseError(
      `this release's SQLite schema (${LATEST_SCHEMA_VERSION}) and PostgreSQL schema (${PG_LATEST_SCHEMA_VERSION}) differ; it cannot copy between them`,
    );
  }
  const target = postgresTarget(url, options);
  const source = await readSqlite(sqlitePath);
  const client = new pg.Client(target.pool);
  client.on("error", () => undefined);
  try {
    await client.connect();
    await migratePostgres(client, target.schema, target.display);
    const counts = await copyInto(client, source, target.display, target.schema);
    return { counts, target: target.display, schema: target.schema };
  } catch (err) {
    throw postgresUnavailable(err, target.display) ?? err;
  } finally {
    await client.end().catch(() => undefined);
  }
}
