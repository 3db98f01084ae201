import { createServer, connect } from "node:net";
import type { Server, Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StateUnavailableError } from "../../src/store/errors.js";
import { SchemaTooNewError } from "../../src/store/migrations.js";
import { openStore } from "../../src/store/open-store.js";
import { PG_LATEST_SCHEMA_VERSION } from "../../src/store/postgres/postgres-migrations.js";
import { PostgresStore, openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { freePort } from "../helpers/free-port.js";
import { waitFor } from "../helpers/wait.js";
import { TEST_PG_URL, adminQuery, freshSchema } from "./postgres-harness.js";
import type { PgSchema } from "./postgres-harness.js";
import { dispatchWith } from "./records.js";

const PW = "never-print-this-pw";

/** A TCP hop in front of the test server that can be cut and restored: the database going away and coming back. */
class Hop {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(readonly port: number) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(5432, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => this.sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.server = server;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("PostgresStore: opening and migrating", () => {
  let schema: PgSchema;
  const opened: PostgresStore[] = [];
  beforeEach(() => {
    schema = freshSchema();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await schema.cleanup();
  });

  it("creates the schema and migrates it once when several replicas start together", async () => {
    opened.push(...(await Promise.all(Array.from({ length: 4 }, () => schema.open()))));
    const { rows } = await adminQuery(`SELECT version FROM "${schema.name}".schema_migrations ORDER BY version`);
    expect(rows.map((r: { version: number }) => r.version)).toEqual(Array.from({ length: PG_LATEST_SCHEMA_VERSION }, (_, i) => i + 1));
    const tables = await adminQuery("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", [
      schema.name,
    ]);
    expect(tables.rows.map((r: { table_name: string }) => r.table_name)).toEqual([
      "dispatches",
      "runner_transitions",
      "runners",
      "schema_migrations",
    ]);
  });

  it("refuses a schema written by a newer release, naming dispatcher.store", async () => {
    opened.push(await schema.open());
    await adminQuery(`INSERT INTO "${schema.name}".schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')`);
    const err = await schema.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaTooNewError);
    expect((err as Error).message).toBe(
      `state database ${TEST_PG_URL} was written by a newer forgejo-nsc (schema 99, this release knows up to ${PG_LATEST_SCHEMA_VERSION}); upgrade or point dispatcher.store elsewhere`,
    );
  });

  it("backfills outcome for runners caught in finishing by migration 3", async () => {
    // Version 2 as an older release left it: apply migrations 1 and 2 only, through a store of that time.
    const store = await schema.open();
    const { dispatch, runners } = dispatchWith({ id: "d1", names: ["failing", "finishing"] });
    await store.createDispatch(dispatch, runners);
    await store.close();
    const s = `"${schema.name}"`;
    await adminQuery(
      `UPDATE ${s}.runners SET state = 'finishing', outcome = NULL, reason = CASE name WHEN 'failing' THEN 'failing: launch failed' ELSE 'finishing: job done' END`,
    );
    await adminQuery(`ALTER TABLE ${s}.runners DROP COLUMN outcome`);
    await adminQuery(`DELETE FROM ${s}.schema_migrations WHERE version >= 3`);
    const reopened = await schema.open();
    opened.push(reopened);
    expect((await reopened.getRunner("failing"))?.outcome).toBe("failed");
    expect((await reopened.getRunner("finishing"))?.outcome).toBe("done");
  });

  it("opens through openStore for a postgres:// URL and through the dispatcher config's store", async () => {
    const byUrl = await openStore(TEST_PG_URL, { postgres: { schema: schema.name } });
    opened.push(byUrl as PostgresStore);
    expect(byUrl).toBeInstanceOf(PostgresStore);
    const byConfig = await openStore({
      state_path: "/nonexistent/unused.db",
      store: TEST_PG_URL,
      postgres: { pool_size: 2, statement_timeout: 1000, connect_timeout: 1000, schema: schema.name },
    });
    opened.push(byConfig as PostgresStore);
    const { dispatch, runners } = dispatchWith({ id: "d1" });
    await byUrl.createDispatch(dispatch, runners);
    expect((await byConfig.getDispatch("d1"))?.runnerNames).toEqual(["d1-r0"]);
  });
});

describe("PostgresStore: the server unreachable or slow", () => {
  let schema: PgSchema;
  beforeEach(() => {
    schema = freshSchema();
  });
  afterEach(() => schema.cleanup());

  it("fails to open with StateUnavailableError naming the host, never the password", async () => {
    const port = await freePort();
    const err = await openPostgresStore(`postgres://fnsc:${PW}@127.0.0.1:${port}/fnsc`, { connectTimeoutMs: 2000 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StateUnavailableError);
    expect((err as Error).message).toBe(
      `state database postgres://fnsc@127.0.0.1:${port}/fnsc: cannot connect (ECONNREFUSED); start the server or check dispatcher.store's host and port and the network; the dispatcher keeps retrying by itself`,
    );
    expect(JSON.stringify(err) + String((err as Error).stack)).not.toContain(PW);
  });

  it("names a database that does not exist", async () => {
    const err = await openPostgresStore(`postgres://postgres:${PW}@127.0.0.1:5432/fnsc_no_such_db`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateUnavailableError);
    expect((err as Error).message).toMatch(
      /postgres:\/\/postgres@127\.0\.0\.1:5432\/fnsc_no_such_db: the database does not exist \(3D000: database "fnsc_no_such_db" does not exist\); create it/,
    );
    expect((err as Error).message).not.toContain(PW);
  });

  it("answers StateUnavailableError while the server is gone, tells writeProblem, and works again when it is back", async () => {
    const hop = new Hop(await freePort());
    await hop.up();
    const store = await openPostgresStore(`postgres://postgres:${PW}@127.0.0.1:${hop.port}/test`, {
      schema: schema.name,
      connectTimeoutMs: 1000,
    });
    try {
      const a = dispatchWith({ id: "a" });
      expect((await store.createDispatch(a.dispatch, a.runners)).created).toBe(true);
      await hop.down();
      const b = dispatchWith({ id: "b" });
      const err = await store.createDispatch(b.dispatch, b.runners).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StateUnavailableError);
      expect((err as StateUnavailableError).statusCode).toBe(503);
      expect((err as Error).message).toMatch(new RegExp(`^state database postgres://postgres@127\\.0\\.0\\.1:${hop.port}/test: `));
      expect((err as Error).message).not.toContain(PW);
      await expect(store.getRunner("a-r0")).rejects.toBeInstanceOf(StateUnavailableError);
      expect(await store.writeProblem()).toMatch(/cannot connect \(ECONNREFUSED\)|lost or could not open a connection/);

      await hop.up();
      await waitFor(async () => (await store.writeProblem()) === undefined, { what: "the store to write again" });
      expect((await store.createDispatch(b.dispatch, b.runners)).created).toBe(true);
      expect(await store.countRunners(["pending"])).toBe(2);
    } finally {
      await store.close();
      await hop.down();
    }
  });

  it("cancels a statement held up longer than the statement timeout with StateUnavailableError", async () => {
    const store = await schema.open({ statementTimeoutMs: 300 });
    const { dispatch, runners } = dispatchWith({ id: "d1" });
    await store.createDispatch(dispatch, runners);
    const { default: pg } = await import("pg");
    const holder = new pg.Client({ connectionString: TEST_PG_URL });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM "${schema.name}".runners WHERE name = 'd1-r0' FOR UPDATE`);
      const err = await store.transition("d1-r0", ["pending"], "launching", "x").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StateUnavailableError);
      expect((err as Error).message).toMatch(/a statement was cancelled \(57014: canceling statement due to statement timeout\)/);
      await holder.query("ROLLBACK");
      expect((await store.transition("d1-r0", ["pending"], "launching", "x"))?.state).toBe("launching");
    } finally {
      await holder.end();
      await store.close();
    }
  });
});
