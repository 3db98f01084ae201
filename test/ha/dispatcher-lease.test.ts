import { afterEach, describe, expect, it } from "vitest";
import { createDispatcher } from "../../src/dispatcher/app.js";
import type { Dispatcher } from "../../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../../src/dispatcher/wiring.js";
import { startHarness } from "../dispatcher/harness.js";
import type { Harness } from "../dispatcher/harness.js";
import { captureLogger } from "../helpers/log-capture.js";
import { ManualLease } from "../helpers/manual-lease.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The dispatcher's acting loops under a lease, with replicas sharing one store. The lease is a
 * test double here (granted and taken away by the test); test/ha/pg-lease.test.ts proves the real
 * one, and test/chaos runs real processes on the real PostgreSQL.
 */
let h: Harness | undefined;
const others: Dispatcher[] = [];

afterEach(async () => {
  for (const d of others.splice(0)) await d.stop();
  await h?.close();
  h = undefined;
});

/** A second replica on the harness's store, with its own lease. */
async function replica(harness: Harness, lease: ManualLease): Promise<Dispatcher> {
  const built = await buildDispatcherDeps(harness.config, captureLogger().logger);
  await built.store.close();
  const d = await createDispatcher({ ...built, store: harness.store, lease, timers: false });
  await d.start();
  others.push(d);
  return d;
}

describe("a standby replica", () => {
  it("accepts and answers, launches nothing; once it gains the lease it launches what was accepted", async () => {
    const lease = new ManualLease();
    h = await startHarness({ simulate: false, customize: (d) => ({ ...d, lease }) });
    const res = await h.request("POST", "/api/v1/dispatch", { count: 2 });
    expect(res.status).toBe(202);
    await h.dispatcher.scheduler.pass();
    const names: string[] = res.body.runners.map((r: { name: string }) => r.name);
    for (const n of names) expect((await h.request("GET", `/api/v1/runners/${n}`)).body.state).toBe("pending");
    expect(h.nsc.calls("run")).toHaveLength(0);
    const ready = await h.request("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body.lease).toMatchObject({ role: "standby", epoch: null });

    lease.grant();
    for (const n of names) {
      await waitFor(async () => (await h!.store.getRunner(n))?.state === "running", { timeoutMs: 20_000, what: `${n} running` });
    }
    expect(h.nsc.calls("run")).toHaveLength(2);
    expect((await h.request("GET", "/readyz")).body.lease).toMatchObject({ role: "leader", epoch: 1 });
    const metrics = await h.request("GET", "/metrics");
    expect(metrics.body).toContain('forgejo_nsc_lease_held{lease="dispatcher",role="leader"} 1');
  });
});

describe("a replica that loses its lease mid-launch", () => {
  it("writes and destroys nothing more; the replica that takes over adopts the instance as after a crash", async () => {
    const a = new ManualLease("dispatcher", "a");
    a.grant();
    h = await startHarness({ simulate: false, knobs: { createDelayMs: 1500 }, customize: (d) => ({ ...d, lease: a }) });
    const res = await h.request("POST", "/api/v1/dispatch", { count: 1 });
    const name: string = res.body.runners[0].name;
    // nsc run has made the instance and is still on its way back (a paused or partitioned leader).
    await waitFor(() => h!.nsc.instances().length === 1, { timeoutMs: 20_000, what: "the instance" });
    a.expireSilently();

    const b = new ManualLease("dispatcher", "b");
    const other = await replica(h, b);
    b.grant(2);
    const adopted = await waitFor(
      async () => {
        const r = await h!.store.getRunner(name);
        return r?.state === "running" ? r : undefined;
      },
      { timeoutMs: 20_000, what: "B to adopt the runner" },
    );
    const instance = h.nsc.instances()[0]!;
    expect(adopted.instanceId).toBe(instance.id);
    expect(adopted.reason).toMatch(/^recovered when this replica took the lease over: adopted instance/);

    // A's nsc run returns: it records nothing and leaves the instance alone.
    await waitFor(() => h!.dispatcher.scheduler.launchesInFlight === 0, { timeoutMs: 20_000, what: "A's launch to end" });
    const after = await h.store.getRunner(name);
    expect(after?.history.map((t) => t.to)).toEqual(["pending", "launching", "running"]);
    expect(after?.updatedAt).toBe(adopted.updatedAt);
    expect(h.nsc.instances().map((i) => i.id)).toEqual([instance.id]);
    expect(h.nsc.calls("run")).toHaveLength(1);
    expect(h.nsc.calls("destroy")).toHaveLength(0);
    expect(h.logs()).toContain("lost the lease after instance");

    // A cancel on the standby marks the runner; the leader destroys the instance on its next tick.
    const cancel = await h.request("DELETE", `/api/v1/runners/${name}?reason=test`);
    expect(cancel.body.state).toBe("finishing");
    expect(h.nsc.calls("destroy")).toHaveLength(0);
    await other.supervisor.tick();
    expect((await h.store.getRunner(name))?.state).toBe("failed");
    expect(h.nsc.instances()).toHaveLength(0);
  });
});
