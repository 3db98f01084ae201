import { randomBytes } from "node:crypto";
import pg from "pg";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { PostgresStore, PostgresStoreOptions } from "../../src/store/postgres/postgres-store.js";
import type { StoreHarness } from "./store-contract.js";
import { PgLeaseBackend, ensureLeaseSchema } from "../../src/ha/pg-lease.js";
import type { WriteFence } from "../../src/store/types.js";

import { TEST_PG_URL } from "../helpers/pg-schema.js";

export { TEST_PG_URL };

/** A connection of its own to the test database, outside any store. */
export async function adminQuery(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/** A schema no other test file uses, dropped (with everything in it) by cleanup. */
export interface PgSchema {
  name: string;
  /** A store on the schema; waits for a pooled connection longer than the default, for loaded CI machines. */
  open(options?: PostgresStoreOptions): Promise<PostgresStore>;
  cleanup(): Promise<void>;
}

export function freshSchema(): PgSchema {
  const name = `fnsc_test_${randomBytes(6).toString("hex")}`;
  return {
    name,
    open: (options = {}) => openPostgresStore(TEST_PG_URL, { poolSize: 8, connectTimeoutMs: 20_000, ...options, schema: name }),
    cleanup: async () => {
      await adminQuery(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    },
  };
}

export async function postgresHarness(): Promise<StoreHarness> {
  const schema = freshSchema();
  return { open: () => schema.open(), holdingFence: () => holdingFence(schema.name), cleanup: () => schema.cleanup() };
}

/** The dispatcher lease on `schema`, claimed for a minute by a replica of its own: its fence. */
async function holdingFence(schema: string): Promise<WriteFence> {
  const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
  try {
    await ensureLeaseSchema(pool, schema);
    const holder = `contract-${randomBytes(3).toString("hex")}`;
    const claim = await new PgLeaseBackend(pool, schema).claim("dispatcher", holder, 60_000);
    if (!claim.ok) throw new Error(`the test lease is held by ${claim.holder}`);
    return { name: "dispatcher", holder, epoch: () => claim.epoch };
  } finally {
    await pool.end();
  }
}
