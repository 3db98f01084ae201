import type { ClientBase } from "pg";
import { SchemaTooNewError, latestVersion, pendingMigrations } from "../migrations.js";
import type { Migration } from "../migrations.js";

/**
 * Versioned schema changes of the PostgreSQL state database, applied in order at open. The version
 * numbers are the SQLite store's (src/store/migrations.ts): version N means the same rows in both,
 * so migrate-store copies column by column. A migration is never edited once released.
 * Timestamps are canonical ISO-8601 UTC text as in SQLite (they sort and compare as text); labels
 * are JSONB (an array, order kept) so the label filter is a containment test.
 */
export const PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "dispatches, runners and their transitions",
    sql: `
      CREATE TABLE dispatches (
        id              TEXT PRIMARY KEY,
        idempotency_key TEXT UNIQUE,
        request_hash    TEXT NOT NULL,
        request         TEXT NOT NULL,
        created_at      TEXT NOT NULL
      );

      CREATE TABLE runners (
        name              TEXT PRIMARY KEY,
        dispatch_id       TEXT NOT NULL REFERENCES dispatches(id),
        dispatch_index    INTEGER NOT NULL,
        state             TEXT NOT NULL,
        reason            TEXT NOT NULL,
        platform          TEXT NOT NULL,
        labels            JSONB NOT NULL,
        scope             TEXT NOT NULL,
        scope_key         TEXT NOT NULL,
        machine_type      TEXT NOT NULL,
        image             TEXT NOT NULL,
        ttl_ms            BIGINT NOT NULL,
        env               TEXT NOT NULL,
        job_id            BIGINT,
        job_attempt       BIGINT,
        job_handle        TEXT,
        instance_id       TEXT,
        forgejo_runner_id BIGINT,
        registration      TEXT,
        launch_attempts   INTEGER NOT NULL DEFAULT 0,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        launched_at       TEXT,
        finished_at       TEXT,
        expires_at        TEXT,
        queue_deadline    TEXT NOT NULL
      );

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
      );
    `,
  },
  {
    version: 2,
    name: "scope keys and scopes in lower case",
    // Nothing to change: no PostgreSQL store existed before version 2, and migrate-store copies
    // rows already lowered by the SQLite migration. Kept so the versions mean the same in both.
    sql: "SELECT 1",
  },
  {
    version: 3,
    name: "where a finishing runner is headed",
    // As SQLite's migration 3: the outcome travelled in the finishing reason before ("failing: …"
    // ended failed, anything else done). substr rather than LIKE: _ is a wildcard there.
    sql: `
      ALTER TABLE runners ADD COLUMN outcome TEXT CHECK (outcome IN ('done', 'failed'));
      UPDATE runners SET outcome = CASE WHEN substr(reason, 1, 9) = 'failing: ' THEN 'failed' ELSE 'done' END
        WHERE state = 'finishing';
    `,
  },
];

export const PG_LATEST_SCHEMA_VERSION = latestVersion(PG_MIGRATIONS);

/** SchemaTooNewError naming the config key that selects PostgreSQL. */
class PostgresSchemaTooNewError extends SchemaTooNewError {
  constructor(found: number, known: number, display: string) {
    super(found, known, display);
    this.message = `state database ${display} was written by a newer forgejo-nsc (schema ${found}, this release knows up to ${known}); upgrade or point dispatcher.store elsewhere`;
  }
}

/**
 * Brings the schema up to date in one transaction under a transaction-scoped advisory lock: two
 * replicas starting together wait for each other, and the second finds nothing left to do.
 * A schema newer than this release is refused (SchemaTooNewError), as the SQLite store does.
 * `schema` must already be checked against SCHEMA_NAME (it is quoted, not escaped).
 */
export async function migratePostgres(
  client: ClientBase,
  schema: string,
  display: string,
  now: () => Date = () => new Date(),
): Promise<{ from: number; to: number }> {
  await client.query("BEGIN");
  try {
    // One lock per schema; taken before the schema exists, so keyed by its name, not current_schema().
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`forgejo-nsc:migrate:${schema}`]);
    // Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when it exists.
    const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`);
    const { rows } = await client.query<{ v: number | null }>("SELECT MAX(version) AS v FROM schema_migrations");
    const from = rows[0]?.v ?? 0;
    const { pending, to } = pendingMigrations(PG_MIGRATIONS, from, (found, known) => new PostgresSchemaTooNewError(found, known, display));
    for (const m of pending) {
      await client.query(m.sql);
      await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
        m.version,
        m.name,
        now().toISOString(),
      ]);
    }
    await client.query("COMMIT");
    return { from, to };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}
