import { randomBytes } from "node:crypto";
import pg from "pg";

/** The PostgreSQL that tests use (CI starts it: .ci/run); FORGEJO_NSC_TEST_PG overrides it. */
export const TEST_PG_URL = process.env.FORGEJO_NSC_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/test";

/** A new empty schema in the test database (or the server at `url`) (test files never see each other's tables); drop() removes it with everything in it. */
export async function freshSchema(prefix: string, url = TEST_PG_URL): Promise<{ schema: string; url: string; drop: () => Promise<void> }> {
  const schema = `${prefix}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  return {
    schema,
    url,
    async drop() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}
