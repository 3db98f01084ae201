import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { NotLeaderError } from "../../src/ha/gate.js";
import { PgLeaseBackend, ensureLeaseSchema, leasePool } from "../../src/ha/pg-lease.js";
import { openPostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { RunnerRecord, Store, WriteFence } from "../../src/store/types.js";
import { captureLogger } from "../helpers/log-capture.js";
import { freshSchema } from "../helpers/pg-schema.js";
import { waitFor } from "../helpers/wait.js";
import { at, dispatchWith } from "./records.js";

/**
 * Store.fenced on PostgreSQL: the acting replica's writes commit only while the lease row names it
 * with its epoch and has not expired by the database's clock. Another replica taking the lease is
 * simulated by changing the row, as its claim would (src/ha/pg-lease.ts).
 */
let db: Awaited<ReturnType<typeof freshSchema>>;
let store: PostgresStore;
let leases: pg.Pool;
let backend: PgLeaseBackend;
let admin: pg.Client;

beforeAll(async () => {
  db = await freshSchema("fence_test");
  store = await openPostgresStore(db.url, { schema: db.schema, poolSize: 4, connectTimeoutMs: 20_000 });
  leases = leasePool({ connectionString: db.url }, 5000, captureLogger("warn").logger);
  await ensureLeaseSchema(leases, db.schema);
  backend = new PgLeaseBackend(leases, db.schema);
  admin = new pg.Client({ connectionString: db.url, options: `-c search_path=${db.schema}` });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  await store?.close();
  await leases?.end();
  await db?.drop();
});

let seq = 0;
/** Per test: its own lease row, held by replica "a", and a fence of "a" on it; its own dispatch. */
let lease: string;
let fence: WriteFence;
let fenced: Store;
let id: string;

beforeEach(async () => {
  seq += 1;
  lease = `lease-${seq}`;
  id = `d${seq}`;
  const claim = await backend.claim(lease, "a", 60_000);
  if (!claim.ok) throw new Error("claim failed");
  fence = { name: lease, holder: "a", epoch: () => claim.epoch };
  fenced = store.fenced(fence);
  const { dispatch, runners } = dispatchWith({ id, runners: 2 });
  await store.createDispatch(dispatch, runners);
});

/** Another replica takes the lease over: a new epoch for another holder, as its claim does after expiry. */
const takeOver = () =>
  admin.query("UPDATE leases SET holder = 'b', epoch = epoch + 1, acquired_at = clock_timestamp() WHERE name = $1", [lease]);

async function runner(name: string): Promise<RunnerRecord> {
  const r = await store.getRunner(name);
  if (!r) throw new Error(`no runner ${name}`);
  return r;
}

describe("a fenced view whose lease is held", () => {
  it("writes as the store itself: transition, update, createDispatch, pruneFinished", async () => {
    const moved = await fenced.transition(`${id}-r0`, ["pending"], "launching", "slot", { launchAttempts: 1 }, at(1000));
    expect(moved).toMatchObject({ state: "launching", launchAttempts: 1 });
    expect(await fenced.update(`${id}-r0`, { reason: "starting" }, at(2000))).toMatchObject({ reason: "starting" });
    expect(await runner(`${id}-r0`)).toMatchObject({ state: "launching", reason: "starting" });
    expect(await fenced.transition(`${id}-r1`, ["launching"], "running", "not launching")).toBeUndefined();

    const other = dispatchWith({ id: `${id}-x`, runners: 1 });
    expect((await fenced.createDispatch(other.dispatch, other.runners)).created).toBe(true);
    await fenced.transition(`${id}-x-r0`, ["pending"], "failed", "gave up", { finishedAt: at(3000).toISOString() }, at(3000));
    expect(await fenced.pruneFinished(at(4000))).toBe(1);
    expect(await store.getRunner(`${id}-x-r0`)).toBeUndefined();
  });

  it("a holder whose name has quotes, backslashes and dollar signs (replica_name is free text)", async () => {
    const holder = `o'brien\\node $$ $fence$ '';--:1:ab`;
    const claim = await backend.claim(`${lease}-odd`, holder, 60_000);
    if (!claim.ok) throw new Error("claim failed");
    const odd = store.fenced({ name: `${lease}-odd`, holder, epoch: () => claim.epoch });
    expect(await odd.transition(`${id}-r0`, ["pending"], "launching", "slot")).toMatchObject({ state: "launching" });
    const other = store.fenced({ name: `${lease}-odd`, holder: `${holder}x`, epoch: () => claim.epoch });
    await expect(other.transition(`${id}-r0`, ["launching"], "pending", "x")).rejects.toThrow(`epoch 1 of ${holder}, in force`);
  });

  it("a renewal by the holder (same epoch, later expiry) changes nothing", async () => {
    expect(await backend.claim(lease, "a", 60_000)).toMatchObject({ ok: true });
    expect(await fenced.transition(`${id}-r0`, ["pending"], "launching", "slot")).toMatchObject({ state: "launching" });
  });
});

describe("a fenced view whose lease was taken over: nothing is written, NotLeaderError", () => {
  it("another holder with the next epoch", async () => {
    const before = await runner(`${id}-r0`);
    await takeOver();
    const refused = fenced.transition(`${id}-r0`, ["pending"], "launching", "too late", { launchAttempts: 1 });
    await expect(refused).rejects.toBeInstanceOf(NotLeaderError);
    await expect(refused).rejects.toThrow(
      `recording runner ${id}-r0 -> launching (the database's lease is epoch 2 of b, in force; this replica held epoch 1) refused: this replica does not hold the lease`,
    );
    await expect(fenced.update(`${id}-r0`, { reason: "too late" })).rejects.toBeInstanceOf(NotLeaderError);
    expect(await runner(`${id}-r0`)).toEqual(before);
  });

  it("its own holding expired by the database's clock (no one claimed it yet)", async () => {
    const before = await runner(`${id}-r0`);
    await admin.query("UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE name = $1", [lease]);
    await expect(fenced.transition(`${id}-r0`, ["pending"], "failed", "too late")).rejects.toThrow(
      "(the database's lease is epoch 1 of a, expired; this replica held epoch 1)",
    );
    expect(await runner(`${id}-r0`)).toEqual(before);
  });

  it("the same holder with a later epoch (it came back after its holding expired): the older term's writes are refused", async () => {
    await admin.query("UPDATE leases SET epoch = epoch + 1 WHERE name = $1", [lease]);
    await expect(fenced.transition(`${id}-r0`, ["pending"], "launching", "old term")).rejects.toBeInstanceOf(NotLeaderError);
    expect((await runner(`${id}-r0`)).state).toBe("pending");
  });

  it("createDispatch and pruneFinished too", async () => {
    await store.transition(`${id}-r1`, ["pending"], "failed", "gave up", { finishedAt: at(1000).toISOString() }, at(1000));
    await takeOver();
    const other = dispatchWith({ id: `${id}-y`, runners: 1 });
    await expect(fenced.createDispatch(other.dispatch, other.runners)).rejects.toBeInstanceOf(NotLeaderError);
    expect(await store.getDispatch(`${id}-y`)).toBeUndefined();
    expect(await store.getRunner(`${id}-y-r0`)).toBeUndefined();
    await expect(fenced.pruneFinished(at(2000))).rejects.toBeInstanceOf(NotLeaderError);
    expect((await runner(`${id}-r1`)).state).toBe("failed");
  });

  it("no lease row at all", async () => {
    const orphan = store.fenced({ name: "no-such-lease", holder: "a", epoch: () => 1 });
    await expect(orphan.transition(`${id}-r0`, ["pending"], "launching", "x")).rejects.toThrow(
      "the lease table has no no-such-lease lease",
    );
    expect((await runner(`${id}-r0`)).state).toBe("pending");
  });

  it("refused without asking the database when the local deadline has passed (epoch() undefined)", async () => {
    const lapsed = store.fenced({ name: lease, holder: "a", epoch: () => undefined });
    await expect(lapsed.transition(`${id}-r0`, ["pending"], "launching", "x")).rejects.toThrow(
      `recording runner ${id}-r0 -> launching refused: this replica does not hold the lease`,
    );
    expect((await runner(`${id}-r0`)).state).toBe("pending");
  });

  it("the store itself (the API's writes) still writes; the fenced view still reads", async () => {
    await takeOver();
    expect(await store.transition(`${id}-r0`, ["pending"], "finishing", "cancelled through the API")).toMatchObject({ state: "finishing" });
    const other = dispatchWith({ id: `${id}-z`, runners: 1 });
    expect((await store.createDispatch(other.dispatch, other.runners)).created).toBe(true);
    expect((await fenced.getRunner(`${id}-r0`))?.state).toBe("finishing");
    expect(await fenced.listRunners({ dispatchId: `${id}-z` })).toHaveLength(1);
    expect(await store.writeProblem()).toBeUndefined();
  });

  it("a refused write counts as no outage: writeProblem stays clear", async () => {
    await takeOver();
    await expect(fenced.update(`${id}-r0`, { reason: "x" })).rejects.toBeInstanceOf(NotLeaderError);
    expect(await fenced.writeProblem()).toBeUndefined();
  });
});

describe("the lease is checked as the write commits, not as it starts", () => {
  it("a takeover while the write waits inside its transaction refuses it", async () => {
    // Hold the runner's row: the fenced transition starts, then waits at its SELECT … FOR UPDATE,
    // as a replica paused mid-write would stand still. Meanwhile the lease changes hands.
    await admin.query("BEGIN");
    await admin.query("SELECT 1 FROM runners WHERE name = $1 FOR UPDATE", [`${id}-r0`]);
    const adminPid = (await admin.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
    const write = fenced.transition(`${id}-r0`, ["pending"], "launching", "late");
    write.catch(() => {});
    await waitFor(
      async () =>
        (
          await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", [
            adminPid,
          ])
        ).rows[0]!.n === 1,
      { timeoutMs: 10_000, what: "the fenced write to wait for the row" },
    );
    await admin.query("UPDATE leases SET holder = 'b', epoch = epoch + 1 WHERE name = $1", [lease]);
    await admin.query("COMMIT");
    await expect(write).rejects.toBeInstanceOf(NotLeaderError);
    const r = await runner(`${id}-r0`);
    expect(r.state).toBe("pending");
    expect(r.history).toHaveLength(1);
  });
});
