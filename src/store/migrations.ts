import type Database from "better-sqlite3";

/**
 * Versioned schema changes of the SQLite state database, applied in order at open. A migration is
 * never edited once released: a change to the schema is a new entry with the next version.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "dispatches, runners and their transitions",
    // Timestamps are canonical ISO-8601 UTC strings (Date.toISOString), so they sort and compare as
    // text and stay readable in the sqlite3 shell. STRICT makes SQLite enforce the column types.
    sql: `
      CREATE TABLE dispatches (
        id              TEXT PRIMARY KEY,
        idempotency_key TEXT UNIQUE,
        request_hash    TEXT NOT NULL,
        request         TEXT NOT NULL,
        created_at      TEXT NOT NULL
      ) STRICT;

      CREATE TABLE runners (
        name              TEXT PRIMARY KEY,
        dispatch_id       TEXT NOT NULL REFERENCES dispatches(id),
        dispatch_index    INTEGER NOT NULL,
        state             TEXT NOT NULL,
        reason            TEXT NOT NULL,
        platform          TEXT NOT NULL,
        labels            TEXT NOT NULL,
        scope             TEXT NOT NULL,
        scope_key         TEXT NOT NULL,
        machine_type      TEXT NOT NULL,
        image             TEXT NOT NULL,
        ttl_ms            INTEGER NOT NULL,
        env               TEXT NOT NULL,
        job_id            INTEGER,
        job_attempt       INTEGER,
        job_handle        TEXT,
        instance_id       TEXT,
        forgejo_runner_id INTEGER,
        registration      TEXT,
        launch_attempts   INTEGER NOT NULL DEFAULT 0,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        launched_at       TEXT,
        finished_at       TEXT,
        expires_at        TEXT,
        queue_deadline    TEXT NOT NULL
      ) STRICT;

      CREATE INDEX runners_by_state ON runners(state, created_at, name);
      CREATE INDEX runners_by_fifo ON runners(created_at, name);
      CREATE INDEX runners_by_scope_key ON runners(scope_key);
      CREATE INDEX runners_by_job_id ON runners(job_id);
      CREATE INDEX runners_by_instance_id ON runners(instance_id);
      CREATE INDEX runners_by_dispatch ON runners(dispatch_id, dispatch_index);

      CREATE TABLE runner_transitions (
        runner     TEXT NOT NULL REFERENCES runners(name) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        at         TEXT NOT NULL,
        from_state TEXT,
        to_state   TEXT NOT NULL,
        reason     TEXT NOT NULL,
        PRIMARY KEY (runner, seq)
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: "scope keys and scopes in lower case",
    // Forgejo owner and repository names are case-insensitive; since this version every scope is
    // recorded in lower case (canonicalScope) and compared so. Rows written before would otherwise
    // escape caps, listings and the sweep until they end. The scope JSON holds only lower-case keys
    // and the level names besides owner/name, so lowering the whole text is exact.
    sql: `
      UPDATE runners SET scope_key = lower(scope_key), scope = lower(scope);
    `,
  },
  {
    version: 3,
    name: "where a finishing runner is headed",
    // Until this version the outcome travelled in the finishing reason: "failing: …" ended failed,
    // anything else ("finishing: …") done. Runners caught in finishing by the upgrade keep their
    // course. substr rather than LIKE: LIKE ignores case and treats _ as a wildcard.
    sql: `
      ALTER TABLE runners ADD COLUMN outcome TEXT CHECK (outcome IN ('done', 'failed'));
      UPDATE runners SET outcome = CASE WHEN substr(reason, 1, 9) = 'failing: ' THEN 'failed' ELSE 'done' END
        WHERE state = 'finishing';
    `,
  },
];

/** The highest version of a migration list. */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations.reduce((max, m) => Math.max(max, m.version), 0);
}

export const LATEST_SCHEMA_VERSION = latestVersion(MIGRATIONS);

/** The state database was written by a newer release; opening it could corrupt what that release wrote. */
export class SchemaTooNewError extends Error {
  constructor(
    readonly found: number,
    readonly known: number,
    readonly path: string,
  ) {
    super(
      `state database ${path} was written by a newer forgejo-nsc (schema ${found}, this release knows up to ${known}); ` +
        "upgrade or point dispatcher.state_path elsewhere",
    );
    this.name = "SchemaTooNewError";
  }
}

/**
 * What migrating a schema at version `from` does, for either store: the pending migrations in list
 * order and the version they reach; a schema newer than the list knows is refused with `tooNew`'s
 * error (a newer release wrote it). Each store runs the steps itself, in its own transaction:
 * SQLite's (better-sqlite3) must be synchronous, PostgreSQL's is asynchronous.
 */
export function pendingMigrations(
  migrations: readonly Migration[],
  from: number,
  tooNew: (found: number, known: number) => Error,
): { pending: Migration[]; to: number } {
  const latest = latestVersion(migrations);
  if (from > latest) throw tooNew(from, latest);
  return { pending: migrations.filter((m) => m.version > from), to: Math.max(from, latest) };
}

function currentVersion(db: Database.Database): number {
  const row = db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null };
  return row.v ?? 0;
}

/**
 * Brings the schema up to date in one write transaction. IMMEDIATE takes the write lock before
 * reading the version, so two processes opening the same new file do not both migrate it.
 */
export function migrate(db: Database.Database, path: string, now: () => Date = () => new Date()): { from: number; to: number } {
  const run = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    ) STRICT`);
    const from = currentVersion(db);
    const { pending, to } = pendingMigrations(MIGRATIONS, from, (found, known) => new SchemaTooNewError(found, known, path));
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    for (const m of pending) {
      db.exec(m.sql);
      record.run(m.version, m.name, now().toISOString());
    }
    return { from, to };
  });
  return run.immediate();
}
