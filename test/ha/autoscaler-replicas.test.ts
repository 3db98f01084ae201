import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAutoscaler } from "../../src/autoscaler/app.js";
import type { Autoscaler } from "../../src/autoscaler/app.js";
import type { DispatchBody } from "../../src/autoscaler/dispatcher-types.js";
import { jobBaseKey } from "../../src/autoscaler/keys.js";
import { buildAutoscalerDeps } from "../../src/autoscaler/wiring.js";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { openAutoscalerReplicas } from "../../src/ha/autoscaler-replicas.js";
import { Metrics } from "../../src/http/metrics.js";
import { DISPATCHER_TOKEN, dispatchesPerJob, instanceConfig } from "../autoscaler/harness.js";
import { startFakeDispatcher } from "../fakes/dispatcher/index.js";
import type { FakeDispatcher } from "../fakes/dispatcher/index.js";
import { startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { freshSchema } from "../helpers/pg-schema.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Two autoscaler replicas on the real PostgreSQL, one fake dispatcher: one reconciles at a time, a
 * webhook delivered to the standby reaches the leader, and after a failover the new leader asks
 * again for every waiting job with the same keys, which launches nothing twice.
 */
let db: Awaited<ReturnType<typeof freshSchema>>;
let forgejo: FakeForgejo;
let dispatcher: FakeDispatcher;
const running: Autoscaler[] = [];

beforeAll(async () => {
  db = await freshSchema("autoscaler_replicas");
  forgejo = await startFakeForgejo({ repos: [{ owner: "acme", name: "app" }] });
  dispatcher = await startFakeDispatcher({ token: DISPATCHER_TOKEN });
});

afterAll(async () => {
  for (const a of running.splice(0)) await a.stop();
  await dispatcher?.close();
  await forgejo?.close();
  await db?.drop();
});

async function replica(name: string): Promise<{ autoscaler: Autoscaler; url: string; logs: () => string }> {
  const logs = captureLogger("debug");
  const config = autoscalerConfigSchema.parse({
    listen: "127.0.0.1:0",
    dispatcher: { url: dispatcher.url, token: DISPATCHER_TOKEN, timeout: "2s" },
    instances: [
      instanceConfig(forgejo.url, {
        scope: { level: "repository", owner: "acme", name: "app" },
        targets: [{ name: "linux", labels: ["linux"] }],
      }),
    ],
    webhooks: { debounce: "50ms" },
    replicas: { store: db.url, schema: db.schema, lease_ttl: "600ms", name },
  });
  const replicas = await openAutoscalerReplicas(config, logs.logger);
  const built = buildAutoscalerDeps(config, logs.logger, { metrics: new Metrics({ defaultMetrics: false }) });
  const autoscaler = await createAutoscaler({
    ...built,
    replicas,
    tuning: { detectRetryMs: { first: 50, max: 200 }, dispatchRetryBaseMs: 20 },
  });
  await autoscaler.app.listen({ host: "127.0.0.1", port: 0 });
  autoscaler.start();
  running.push(autoscaler);
  const addr = autoscaler.app.server.address();
  return { autoscaler, url: `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`, logs: logs.text };
}

const role = async (url: string) => ((await (await fetch(`${url}/readyz`)).json()) as { lease: { role: string } }).lease.role;

describe("autoscaler replicas", () => {
  it("one reconciles; the standby relays webhooks to it; after a failover the same keys launch nothing twice", async () => {
    const a = await replica("a");
    await waitFor(async () => (await role(a.url)) === "leader", { timeoutMs: 10_000, what: "a to lead" });
    const b = await replica("b");
    await waitFor(async () => (await role(b.url)) === "standby", { timeoutMs: 10_000, what: "b to stand by" });

    const jobs = [1, 2, 3].map(() => forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] }));
    await waitFor(() => jobs.every((j) => dispatcher.createdForJob(j.id).length === 1), {
      timeoutMs: 15_000,
      what: "a runner asked for each job",
    });
    const [ra, rb] = [a.autoscaler.reconcilers[0]!, b.autoscaler.reconcilers[0]!];
    expect(rb.passCount).toBe(0);

    // A delivery to the standby reaches the leader's reconciler.
    const delivered = await fetch(`${b.url}/webhook/fj`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forgejo-event": "push" },
      body: "{}",
    });
    expect(delivered.status).toBe(202);
    await waitFor(() => ra.status().webhook.last_delivery_event === "push", {
      timeoutMs: 5000,
      what: "the leader to get the relayed delivery",
    });
    expect(rb.status().webhook.last_delivery_event).toBeNull();

    // The leader goes away (its jobs are still waiting: no runner connected). b takes over; it
    // sees the runners at the dispatcher and asks for nothing new.
    await a.autoscaler.stop();
    running.splice(running.indexOf(a.autoscaler), 1);
    await waitFor(async () => (await role(b.url)) === "leader", { timeoutMs: 10_000, what: "b to take over" });
    await waitFor(() => rb.passCount >= 2, { timeoutMs: 10_000, what: "b to reconcile" });
    expect(rb.last.plan?.jobs.map((j) => j.state)).toEqual(["in_flight", "in_flight", "in_flight"]);
    expect([...dispatchesPerJob(dispatcher).values()]).toEqual([1, 1, 1]);
    // Had it asked (its look at the dispatcher stale or failed), it would have used the keys a used,
    // derived from the job alone, and the dispatcher would have launched nothing: ask, to prove it.
    for (const j of rb.last.plan?.jobs ?? []) {
      const first = dispatcher.createdForJob(j.id)[0]!;
      expect(jobBaseKey("fj", j)).toBe(first.key);
      const again = await rb.actor.post(first.key!, first.body as unknown as DispatchBody);
      expect(again.kind).toBe("duplicate");
    }
    expect([...dispatchesPerJob(dispatcher).values()]).toEqual([1, 1, 1]);
    expect(b.logs()).toContain("acquired the autoscaler lease");
  });
});

describe("replicas.store", () => {
  const PW = "replicas-store-pw-never-shown";
  const configWith = (replicas: Record<string, unknown>) =>
    autoscalerConfigSchema.parse({
      dispatcher: { url: "http://127.0.0.1:1", token: DISPATCHER_TOKEN },
      instances: [instanceConfig("http://127.0.0.1:1", { targets: [{ name: "linux", labels: ["linux"] }] })],
      replicas: { name: "r", ...replicas },
    });

  it.each([
    [
      "sslmode=prefer",
      `postgres://u:${PW}@db.example/d?sslmode=prefer`,
      /^replicas\.store has sslmode=prefer, which node-postgres cannot do/,
    ],
    [
      "an unknown parameter",
      `postgres://u:${PW}@db.example/d?target_session_attrs=any`,
      /^replicas\.store has the parameter target_session_attrs/,
    ],
  ])(
    "is read as the dispatcher reads dispatcher.store: %s is refused, naming replicas.store and not the password",
    async (_what, url, message) => {
      const logs = captureLogger("debug");
      const err = await openAutoscalerReplicas(configWith({ store: url }), logs.logger).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain(PW);
      expect(logs.text()).not.toContain(PW);
    },
  );

  it("an unreachable database is named with what to check, never with its password", async () => {
    const logs = captureLogger("debug");
    // Port 1 on loopback: nothing listens there.
    const err = await openAutoscalerReplicas(configWith({ store: `postgres://u:${PW}@127.0.0.1:1/d` }), logs.logger).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(
      /^cannot open the replicas' database postgres:\/\/u@127\.0\.0\.1:1\/d \(replicas\.store\): .*ECONNREFUSED.*; start the server or check replicas\.store's host, port and credentials$/,
    );
    expect((err as Error).message).not.toContain(PW);
    expect(logs.text()).not.toContain(PW);
  });

  it("takes libpq's URL without a host (the NixOS module's socket URL) and connects with it", async () => {
    // The test server is reached over TCP here; the URL keeps the form without a host and names it in host=.
    const u = new URL(db.url);
    const url = `postgres://${u.username}@/${u.pathname.slice(1)}?host=${u.hostname}&port=${u.port || 5432}`;
    const logs = captureLogger("debug");
    // Opening creates the webhook relay's table: a statement on the database the URL names.
    const replicas = await openAutoscalerReplicas(configWith({ store: url, schema: db.schema, lease_ttl: "600ms" }), logs.logger);
    expect(replicas).toBeDefined();
    await replicas!.relay.stop();
    await replicas!.lease.stop();
  });
});
