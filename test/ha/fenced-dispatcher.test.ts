import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { NotLeaderError } from "../../src/ha/gate.js";
import { LeaseKeeper } from "../../src/ha/lease.js";
import { PgLeaseBackend, ensureLeaseSchema, leasePool } from "../../src/ha/pg-lease.js";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import { startHarness } from "../dispatcher/harness.js";
import type { Harness } from "../dispatcher/harness.js";
import { captureLogger } from "../helpers/log-capture.js";
import { freshSchema } from "../helpers/pg-schema.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A dispatcher replica on PostgreSQL whose lease another replica took while this one still
 * believes it holds it (its local deadline has not passed: a pause between held() and a write).
 * Its acting work's writes are refused by the database; what it writes for an HTTP request is not.
 * The lease's renewals are driven by hand (timers off); the takeover is a change of the lease row.
 */
let h: Harness | undefined;
let db: Awaited<ReturnType<typeof freshSchema>> | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
  await db?.drop();
  db = undefined;
});

async function replicaOnPostgres(): Promise<{ h: Harness; lease: LeaseKeeper; admin: (sql: string) => Promise<void> }> {
  db = await freshSchema("fenced_dispatcher");
  const schema = db.schema;
  const store = await openPostgresStore(db.url, { schema, poolSize: 4, connectTimeoutMs: 20_000 });
  const pool = leasePool({ connectionString: db.url }, 5000, captureLogger("warn").logger);
  await ensureLeaseSchema(pool, schema);
  const lease = new LeaseKeeper({
    name: "dispatcher",
    holder: "replica-a",
    backend: new PgLeaseBackend(pool, schema),
    ttlMs: 60_000,
    logger: captureLogger("warn").logger,
    timers: false,
    close: () => pool.end(),
  });
  const harness = await startHarness({ simulate: false, customize: (d) => ({ ...d, store, lease }) });
  const url = db.url;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  return { h: harness, lease, admin };
}

describe("a replica whose lease was taken over while it still believes it holds it", () => {
  it("the holder's acting writes land; once taken over they are refused (NotLeaderError, nothing written) while its API writes still land", async () => {
    const r = await replicaOnPostgres();
    h = r.h;
    await r.lease.renew();
    expect(r.lease.held()).toBe(true);
    expect(r.lease.epoch()).toBe(1);

    // (c) The holder launches: every record of the launch passed the fence.
    const first = await h.request("POST", "/api/v1/dispatch", { count: 1 });
    expect(first.status).toBe(202);
    const launched: string = first.body.runners[0].name;
    await waitFor(async () => (await h!.store.getRunner(launched))?.state === "running", {
      timeoutMs: 20_000,
      what: `${launched} running`,
    });
    expect((await h.store.getRunner(launched))?.history.map((t) => t.to)).toEqual(["pending", "launching", "running"]);

    // Another replica holds the lease now; this one's local deadline has not passed.
    await r.admin("UPDATE leases SET holder = 'replica-b', epoch = epoch + 1, acquired_at = clock_timestamp() WHERE name = 'dispatcher'");
    expect(r.lease.held()).toBe(true);

    // (b) Accepting a dispatch is the API's write: it lands.
    const second = await h.request("POST", "/api/v1/dispatch", { count: 1 });
    expect(second.status).toBe(202);
    const waiting: string = second.body.runners[0].name;
    const before = await h.store.getRunner(waiting);
    expect(before?.state).toBe("pending");

    // (a) The scheduling pass's write (pending -> launching) is refused; nothing is launched.
    await expect(h.dispatcher.scheduler.pass()).rejects.toBeInstanceOf(NotLeaderError);
    await waitFor(() => !h!.dispatcher.scheduler.passing, { what: "the pass the dispatch kicked to end" });
    expect(await h.store.getRunner(waiting)).toEqual(before);
    expect(h.nsc.calls("run")).toHaveLength(1);

    // (a) So is any other write of the acting records (the supervisor's, a launch's).
    const running = await h.store.getRunner(launched);
    await expect(
      h.dispatcher.ctx.records.transition(running!, ["running"], "finishing", "failing: too late", { outcome: "failed" }),
    ).rejects.toThrow(/the database's lease is epoch 2 of replica-b, in force; this replica held epoch 1\) refused/);
    await expect(h.dispatcher.ctx.records.update(launched, { reason: "too late" })).rejects.toBeInstanceOf(NotLeaderError);
    expect(await h.store.getRunner(launched)).toEqual(running);

    // (b) A cancel through this replica's API is written: the pending runner ends at once.
    const cancel = await h.request("DELETE", `/api/v1/runners/${waiting}?reason=test`);
    expect(cancel.status).toBe(200);
    expect(cancel.body.state).toBe("failed");
    expect((await h.store.getRunner(waiting))?.history.map((t) => t.to)).toEqual(["pending", "finishing", "failed"]);
  });
});
