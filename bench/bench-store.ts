import { randomBytes } from "node:crypto";
import { join } from "node:path";
import pg from "pg";
import { openStore } from "../src/store/open-store.js";
import type { Store } from "../src/store/types.js";

/**
 * Where a benchmark's dispatcher keeps its records: a SQLite file in the run's directory (default),
 * or, with FORGEJO_NSC_BENCH_STORE=postgres://… (`npm run bench -- --store postgres://…`), a fresh
 * schema in that PostgreSQL database, dropped afterwards.
 */
export interface BenchStore {
  kind: "sqlite" | "postgresql";
  /** The `dispatcher:` keys that select it, as YAML flow-mapping entries. */
  yaml: string;
  open(): Promise<Store>;
  drop(): Promise<void>;
}

export async function benchStore(dir: string): Promise<BenchStore> {
  const url = process.env.FORGEJO_NSC_BENCH_STORE;
  if (!url) {
    const path = join(dir, "dispatcher.db");
    return { kind: "sqlite", yaml: `state_path: "${path}"`, open: () => openStore(path), drop: async () => {} };
  }
  const schema = `bench_${randomBytes(4).toString("hex")}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE SCHEMA ${schema}`);
  return {
    kind: "postgresql",
    yaml: `store: "${url}", postgres: { schema: ${schema} }`,
    open: () => openStore(url, { postgres: { schema } }),
    drop: () => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
  };
}
