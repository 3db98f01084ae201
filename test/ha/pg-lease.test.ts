import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseKeeper } from "../../src/ha/lease.js";
import type { LeaseChange } from "../../src/ha/lease.js";
import { openLease } from "../../src/ha/open-lease.js";
import { PgLeaseBackend, ensureLeaseSchema, leasePool } from "../../src/ha/pg-lease.js";
import { captureLogger } from "../helpers/log-capture.js";
import { freshSchema } from "../helpers/pg-schema.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The lease against the real PostgreSQL. The database's clock cannot be faked: TTLs are short
 * (hundreds of ms) and every wait is a waitFor with a deadline.
 */
let db: Awaited<ReturnType<typeof freshSchema>>;
let pool: pg.Pool;
let backend: PgLeaseBackend;
const { logger } = captureLogger("warn");

beforeAll(async () => {
  db = await freshSchema("lease_test");
  pool = leasePool({ connectionString: db.url }, 2000, logger);
  await ensureLeaseSchema(pool, db.schema);
  await ensureLeaseSchema(pool, db.schema); // idempotent
  backend = new PgLeaseBackend(pool, db.schema);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

let seq = 0;
const leaseName = () => `lease-${++seq}`;

describe("PgLeaseBackend: one statement decides, by the database's clock", () => {
  it("the first claimant gets epoch 1; renewals keep it; a live holding is never taken", async () => {
    const name = leaseName();
    expect(await backend.claim(name, "a", 5000)).toEqual({ ok: true, epoch: 1 });
    expect(await backend.claim(name, "a", 5000)).toEqual({ ok: true, epoch: 1 });
    const other = await backend.claim(name, "b", 5000);
    expect(other).toMatchObject({ ok: false, holder: "a" });
    expect(Date.parse((other as { expiresAt: string }).expiresAt)).toBeGreaterThan(Date.now() + 3000);
  });

  it("an expired holding goes to the next claimant with the next epoch (the fencing token)", async () => {
    const name = leaseName();
    expect(await backend.claim(name, "a", 150)).toEqual({ ok: true, epoch: 1 });
    const taken = await waitFor(
      async () => {
        const c = await backend.claim(name, "b", 5000);
        return c.ok ? c : undefined;
      },
      { timeoutMs: 5000, intervalMs: 25, what: "b to take the expired lease" },
    );
    expect(taken).toEqual({ ok: true, epoch: 2 });
    expect(await backend.claim(name, "a", 5000)).toMatchObject({ ok: false, holder: "b" });
    expect((await backend.terms(name)).map((t) => [t.epoch, t.holder])).toEqual([
      [1, "a"],
      [2, "b"],
    ]);
  });

  it("the same holder coming back after its holding expired gets a new epoch", async () => {
    const name = leaseName();
    await backend.claim(name, "a", 100);
    await waitFor(
      async () => {
        const r = await pool.query(`SELECT expires_at < clock_timestamp() AS expired FROM ${db.schema}.leases WHERE name = $1`, [name]);
        return r.rows[0]?.expired === true;
      },
      { timeoutMs: 5000, what: "the holding to expire" },
    );
    expect(await backend.claim(name, "a", 5000)).toEqual({ ok: true, epoch: 2 });
  });

  it("release ends the holding at once, only for the holder and epoch named", async () => {
    const name = leaseName();
    await backend.claim(name, "a", 60_000);
    await backend.release(name, "b", 1);
    await backend.release(name, "a", 99);
    expect(await backend.claim(name, "b", 5000)).toMatchObject({ ok: false, holder: "a" });
    await backend.release(name, "a", 1);
    expect(await backend.claim(name, "b", 5000)).toEqual({ ok: true, epoch: 2 });
  });

  it("ten claimants at once: exactly one wins", async () => {
    const name = leaseName();
    const pools = Array.from({ length: 10 }, () => leasePool({ connectionString: db.url }, 5000, logger));
    try {
      const results = await Promise.all(pools.map((p, i) => new PgLeaseBackend(p, db.schema).claim(name, `r${i}`, 10_000)));
      expect(results.filter((r) => r.ok)).toEqual([{ ok: true, epoch: 1 }]);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});

describe("LeaseKeeper on PostgreSQL: two replicas never act together", () => {
  it("the standby takes over only after the leader stopped acting, within ttl + ttl/3", async () => {
    const name = leaseName();
    const ttlMs = 600;
    const mk = (holder: string) => {
      const changes: (LeaseChange & { at: number })[] = [];
      const k = new LeaseKeeper({ name, holder, backend, ttlMs, logger });
      k.onChange((c) => changes.push({ ...c, at: performance.now() }));
      return { k, changes };
    };
    const a = mk("a");
    await a.k.start();
    expect(a.k.held()).toBe(true);
    const b = mk("b");
    void b.k.start();
    await waitFor(() => b.k.status().heldBy === "a", { timeoutMs: 5000, what: "b to see a holding it" });
    // a renews on its own for a few TTLs: b never gets it meanwhile.
    const until = performance.now() + 3 * ttlMs;
    await waitFor(
      () => {
        expect(b.k.held()).toBe(false);
        expect(a.k.held()).toBe(true);
        return performance.now() > until;
      },
      { timeoutMs: 10_000, what: "a to keep renewing" },
    );

    // a "dies": it stops renewing without releasing (as after SIGKILL).
    const lastHeldCheck = () => a.k.held();
    (a.k as unknown as { stopped: boolean }).stopped = true;
    const diedAt = performance.now();
    await waitFor(() => b.k.held(), { timeoutMs: 5000, what: "b to take over" });
    const tookAt = b.changes.find((c) => c.held)!.at;
    expect(lastHeldCheck()).toBe(false);
    const aStopped = a.changes.find((c) => !c.held)?.at ?? diedAt + ttlMs;
    expect(aStopped).toBeLessThan(tookAt);
    expect(tookAt - diedAt).toBeLessThan(ttlMs + ttlMs / 3 + 1000);
    expect(b.k.epoch()).toBe(2);
    await b.k.stop();
  });

  it("a graceful stop hands over at once", async () => {
    const name = leaseName();
    const a = new LeaseKeeper({ name, holder: "a", backend, ttlMs: 30_000, logger });
    const b = new LeaseKeeper({ name, holder: "b", backend, ttlMs: 30_000, logger, timers: false });
    await a.start();
    expect(a.held()).toBe(true);
    await b.renew();
    expect(b.held()).toBe(false);
    await a.stop();
    await b.renew();
    expect(b.held()).toBe(true);
    await b.stop();
  });
});

describe("openLease", () => {
  it("no database: the single-replica lease; PostgreSQL: the database lease, in the store's schema", async () => {
    const sole = await openLease({ postgres: undefined, name: "dispatcher", ttlMs: 1000, logger });
    expect(sole.status().role).toBe("single");
    await sole.stop();
    const lease = await openLease({
      postgres: { connection: { connectionString: db.url }, schema: db.schema },
      name: leaseName(),
      ttlMs: 1000,
      logger,
      replica: "replica-a",
    });
    await lease.start();
    expect(lease.held()).toBe(true);
    expect(lease.holder).toMatch(new RegExp(`^replica-a:${process.pid}:[0-9a-f]{6}$`));
    await lease.stop();
    expect(lease.held()).toBe(false);
    expect(await backend.claim(lease.name, "next", 1000)).toEqual({ ok: true, epoch: 2 });
  });
});
