import pg from "pg";
import type { Logger } from "pino";
import { errorMessage } from "../shared/error-message.js";
import type { LeaseBackend, LeaseClaim } from "./lease.js";

/**
 * The lease table: one row per lease. `epoch` is the fencing token: it grows by one whenever the
 * lease changes hands (or its holder's claim had expired), never on a renewal. `lease_terms` keeps
 * one row per epoch (who held it from when) for operators and for the replica chaos test.
 */
const schemaSql = (s: string) => `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.leases (
  name text PRIMARY KEY,
  holder text NOT NULL,
  epoch bigint NOT NULL,
  acquired_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.lease_terms (
  name text NOT NULL,
  epoch bigint NOT NULL,
  holder text NOT NULL,
  acquired_at timestamptz NOT NULL,
  PRIMARY KEY (name, epoch)
);`;

/**
 * Take or renew in one statement, timed by the database's clock (clock_timestamp(): the time the
 * statement runs, never earlier than when the replica sent it). The row lock that ON CONFLICT takes
 * makes two replicas claiming at once see each other's result: one wins.
 */
const claimSql = (s: string) => `
WITH claimed AS (
  INSERT INTO ${s}.leases AS l (name, holder, epoch, acquired_at, expires_at)
  VALUES ($1, $2, 1, clock_timestamp(), clock_timestamp() + make_interval(secs => $3::double precision / 1000))
  ON CONFLICT (name) DO UPDATE SET
    holder = EXCLUDED.holder,
    epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() THEN l.epoch ELSE l.epoch + 1 END,
    acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
    expires_at = EXCLUDED.expires_at
  WHERE l.expires_at <= clock_timestamp() OR l.holder = EXCLUDED.holder
  RETURNING l.epoch, l.acquired_at
), term AS (
  INSERT INTO ${s}.lease_terms (name, epoch, holder, acquired_at)
  SELECT $1, epoch, $2, acquired_at FROM claimed
  ON CONFLICT (name, epoch) DO NOTHING
)
SELECT epoch::text AS epoch FROM claimed`;

const holderSql = (s: string) => `SELECT holder, expires_at FROM ${s}.leases WHERE name = $1`;
const releaseSql = (s: string) =>
  `UPDATE ${s}.leases SET expires_at = clock_timestamp() WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`;

export interface LeaseTerm {
  epoch: number;
  holder: string;
  acquiredAt: Date;
}

/** Schema names are put into SQL text: only plain identifiers. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function checkedSchema(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`"${schema}" is not a schema name: lower-case letters, digits and underscores`);
  return schema;
}

/** Creates the lease tables in `schema` if they are missing (replicas starting together take turns). */
export async function ensureLeaseSchema(pool: pg.Pool, schema = "public"): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    // CREATE TABLE IF NOT EXISTS is not safe against itself running concurrently.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('forgejo-nsc lease schema'))");
    await client.query(schemaSql(checkedSchema(schema)));
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Lease statements over a pool that the caller keeps for leases alone (so a busy store never delays a renewal). */
export class PgLeaseBackend implements LeaseBackend {
  private readonly sql: { claim: string; holder: string; release: string; terms: string };

  constructor(
    private readonly pool: pg.Pool,
    schema = "public",
  ) {
    const s = checkedSchema(schema);
    this.sql = {
      claim: claimSql(s),
      holder: holderSql(s),
      release: releaseSql(s),
      terms: `SELECT epoch::text AS epoch, holder, acquired_at FROM ${s}.lease_terms WHERE name = $1 ORDER BY epoch`,
    };
  }

  async claim(name: string, holder: string, ttlMs: number): Promise<LeaseClaim> {
    const res = await this.pool.query<{ epoch: string }>(this.sql.claim, [name, holder, ttlMs]);
    const row = res.rows[0];
    if (row) return { ok: true, epoch: Number(row.epoch) };
    const other = await this.pool.query<{ holder: string; expires_at: Date }>(this.sql.holder, [name]);
    const o = other.rows[0];
    return { ok: false, holder: o?.holder ?? "unknown", expiresAt: (o?.expires_at ?? new Date(0)).toISOString() };
  }

  async release(name: string, holder: string, epoch: number): Promise<void> {
    await this.pool.query(this.sql.release, [name, holder, epoch]);
  }

  /** Every epoch of a lease, oldest first. */
  async terms(name: string): Promise<LeaseTerm[]> {
    const res = await this.pool.query<{ epoch: string; holder: string; acquired_at: Date }>(this.sql.terms, [name]);
    return res.rows.map((r) => ({ epoch: Number(r.epoch), holder: r.holder, acquiredAt: r.acquired_at }));
  }
}

/**
 * A pool of one connection for lease statements. A statement that takes longer than `timeoutMs`
 * fails (the keeper tries again); a connection broken by a database restart is replaced.
 */
export function leasePool(connection: pg.PoolConfig, timeoutMs: number, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    ...connection,
    max: 1,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    idleTimeoutMillis: 0,
    application_name: "forgejo-nsc lease",
  });
  // An idle connection that the server closed (restart) is reported here; the next query reconnects.
  pool.on("error", (err) => logger.debug({ err: errorMessage(err) }, "lease connection closed; reconnecting on the next renewal"));
  return pool;
}
