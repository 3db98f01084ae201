import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import type { Logger } from "pino";
import type { Lease } from "./lease.js";
import { LeaseKeeper, SoleLease } from "./lease.js";
import { PgLeaseBackend, ensureLeaseSchema, leasePool } from "./pg-lease.js";

/**
 * This process's name in the lease table: the host (or the configured replica name), the pid and a
 * random part, so a restarted replica never renews the holding of the process it replaces.
 */
export function holderId(replica?: string): string {
  return `${replica ?? hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

export interface OpenLeaseOptions {
  /** Where the replicas meet: a PostgreSQL connection (and the schema of its tables), or none: the single-replica lease. */
  postgres: { connection: pg.PoolConfig; schema: string } | undefined;
  name: string;
  ttlMs: number;
  logger: Logger;
  replica?: string | undefined;
}

/** The lease for a store location; its stop() releases it and closes its connection. */
export async function openLease(opts: OpenLeaseOptions): Promise<Lease> {
  if (!opts.postgres) return new SoleLease(opts.name);
  // A claim may take up to half the TTL (a busy server, a reconnect after a restart); the holder's
  // deadline counts from when it was sent, so a slow answer never stretches the holding.
  const pool = leasePool(opts.postgres.connection, Math.max(1000, Math.round(opts.ttlMs / 2)), opts.logger);
  try {
    await ensureLeaseSchema(pool, opts.postgres.schema);
  } catch (err) {
    await pool.end();
    throw err;
  }
  return new LeaseKeeper({
    name: opts.name,
    holder: holderId(opts.replica),
    backend: new PgLeaseBackend(pool, opts.postgres.schema),
    ttlMs: opts.ttlMs,
    logger: opts.logger.child({ component: "lease" }),
    close: () => pool.end(),
  });
}
