import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leasePool } from "../../src/ha/pg-lease.js";
import { WebhookRelay } from "../../src/ha/webhook-relay.js";
import type { DeliverySink } from "../../src/ha/webhook-relay.js";
import { captureLogger } from "../helpers/log-capture.js";
import { freshSchema } from "../helpers/pg-schema.js";
import { waitFor } from "../helpers/wait.js";

/** Webhook deliveries received by a standby autoscaler reach the leader's reconcilers (real PostgreSQL). */
let db: Awaited<ReturnType<typeof freshSchema>>;
const pools: pg.Pool[] = [];
const { logger } = captureLogger("warn");

const relay = (opts: { pollMs?: number; keepMs?: number } = {}) => {
  const pool = leasePool({ connectionString: db.url }, 5000, logger);
  pools.push(pool);
  return new WebhookRelay({ pool, schema: db.schema, logger, ...opts });
};

function sink() {
  const got: string[] = [];
  const s: DeliverySink = {
    onWorkflowJob: (e) => got.push(`job ${e.id}/${e.attempt ?? 0} ${e.action} ${e.labels.join(",")}`),
    onDelivery: (event) => got.push(`delivery ${event}`),
  };
  return { got, s };
}

beforeAll(async () => {
  db = await freshSchema("relay_test");
  await relay().ensureSchema();
  await relay().ensureSchema();
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await db?.drop();
});

describe("WebhookRelay", () => {
  it("a standby's deliveries reach the leader's sink in order; nothing reaches a replica that does not lead", async () => {
    const standby = relay();
    const leader = relay({ pollMs: 20 });
    const other = relay({ pollMs: 20 });
    const mine = sink();
    const theirs = sink();
    let leading = false;
    leader.start(
      () => leading,
      (instance) => (instance === "forge" ? mine.s : undefined),
    );
    other.start(
      () => false,
      () => theirs.s,
    );
    await standby.publish("forge", { kind: "workflow_job", job: { action: "queued", id: 7, attempt: 2, labels: ["linux"] } });
    await standby.publish("forge", { kind: "delivery", event: "push" });
    await standby.publish("unknown", { kind: "delivery", event: "push" });
    // No leader yet: the deliveries wait for one.
    const waiting = await pools[0]!.query(`SELECT count(*)::int AS n FROM ${db.schema}.webhook_relay`);
    expect(waiting.rows[0].n).toBe(3);
    leading = true;
    await waitFor(() => mine.got.length === 2, { timeoutMs: 5000, what: "the leader to get both deliveries" });
    expect(mine.got).toEqual(["job 7/2 queued linux", "delivery push"]);
    expect(theirs.got).toEqual([]);
    await leader.stop();
    await other.stop();
  });

  it("two takers at once never get the same delivery", async () => {
    const a = relay();
    const b = relay();
    for (let i = 0; i < 50; i++) await a.publish("forge", { kind: "delivery", event: `e${i}` });
    const [x, y] = await Promise.all([a.take(), b.take()]);
    const events = [...x, ...y].map((d) => (d.delivery.kind === "delivery" ? d.delivery.event : ""));
    expect(events.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `e${i}`).sort());
  });

  it("deliveries older than keepMs are dropped: the next poll of Forgejo covers what they announced", async () => {
    const r = relay({ keepMs: 50 });
    await r.publish("forge", { kind: "delivery", event: "old" });
    await waitFor(
      async () => {
        const res = await pools[0]!.query(
          `SELECT count(*)::int AS n FROM ${db.schema}.webhook_relay WHERE received_at < clock_timestamp() - interval '60 milliseconds'`,
        );
        return res.rows[0].n === 1;
      },
      { timeoutMs: 5000, what: "the delivery to age" },
    );
    await r.publish("forge", { kind: "delivery", event: "new" });
    expect((await r.take()).map((d) => (d.delivery.kind === "delivery" ? d.delivery.event : ""))).toEqual(["new"]);
  });
});
