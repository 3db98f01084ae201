import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { QueueFullError } from "../../src/store/errors.js";
import type { RunnerRecord, Store, WriteFence } from "../../src/store/types.js";
import { at, dispatchWith, iso } from "./records.js";

/**
 * Where a Store implementation keeps its data (a file, a database). `open` may be called several
 * times: each call is a new, independent Store on the same data, as a restarted process or a second
 * replica would see it.
 */
export interface StoreHarness {
  open(): Promise<Store>;
  /** A fence (Store.fenced) whose lease is held on this data now. */
  holdingFence(): Promise<WriteFence>;
  cleanup(): Promise<void>;
}

/** The behaviour every Store implementation must show; run it from the implementation's test file. */
export function runStoreContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let harness: StoreHarness;
    let store: Store;
    const opened: Store[] = [];

    async function open(): Promise<Store> {
      const s = await harness.open();
      opened.push(s);
      return s;
    }

    beforeEach(async () => {
      harness = await makeHarness();
      store = await open();
    });

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await harness.cleanup();
    });

    describe("createDispatch", () => {
      it("records the dispatch, its runners and each runner's first transition", async () => {
        const { dispatch, runners } = dispatchWith({
          id: "d1",
          key: "job-17-1",
          runners: 2,
          scope: { level: "repository", owner: "acme", name: "app" },
          env: { FOO: "bar" },
          runner: { job: { id: 17, attempt: 1, handle: "h-17" }, registration: "ephemeral" },
        });
        const res = await store.createDispatch(dispatch, runners);
        expect(res.created).toBe(true);
        expect(res.dispatch).toEqual({ ...dispatch, runnerNames: ["d1-r0", "d1-r1"] });
        expect(res.runners.map((r) => r.name)).toEqual(["d1-r0", "d1-r1"]);

        const first = await store.getRunner("d1-r0");
        expect(first).toEqual({
          ...runners[0],
          history: [{ at: runners[0]!.createdAt, from: null, to: "pending", reason: runners[0]!.reason }],
        });
        expect(first?.job).toEqual({ id: 17, attempt: 1, handle: "h-17" });
        expect(first?.env).toEqual({ FOO: "bar" });
        expect(await store.getDispatch("d1")).toEqual(res.dispatch);
        expect(await store.getDispatchByKey("job-17-1")).toEqual(res.dispatch);
        expect(await store.getDispatchByKey("job-17-2")).toBeUndefined();
        expect(await store.getDispatch("nope")).toBeUndefined();
        expect(await store.getRunner("nope")).toBeUndefined();
      });

      it("returns the existing dispatch for a key seen before and records nothing new", async () => {
        const a = dispatchWith({ id: "d1", key: "k", runners: 2 });
        const b = dispatchWith({ id: "d2", key: "k", runners: 3, requestHash: "other" });
        expect((await store.createDispatch(a.dispatch, a.runners)).created).toBe(true);
        const again = await store.createDispatch(b.dispatch, b.runners);
        expect(again.created).toBe(false);
        expect(again.dispatch.id).toBe("d1");
        expect(again.dispatch.requestHash).toBe("hash-d1");
        expect(again.runners.map((r) => r.name)).toEqual(["d1-r0", "d1-r1"]);
        expect(await store.getDispatch("d2")).toBeUndefined();
        expect(await store.getRunner("d2-r0")).toBeUndefined();
        expect(await store.countRunners(["pending"])).toBe(2);
      });

      it("creates exactly one dispatch when 200 requests with one key arrive at once", async () => {
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => {
            const { dispatch, runners } = dispatchWith({ id: `d${i}`, key: "same", runners: 2 });
            return store.createDispatch(dispatch, runners);
          }),
        );
        const created = results.filter((r) => r.created);
        expect(created).toHaveLength(1);
        const winner = created[0]!.dispatch.id;
        expect(new Set(results.map((r) => r.dispatch.id))).toEqual(new Set([winner]));
        for (const r of results) expect(r.runners.map((x) => x.name)).toEqual([`${winner}-r0`, `${winner}-r1`]);
        expect(await store.listRunners()).toHaveLength(2);
      });

      it("records every dispatch without a key", async () => {
        for (const id of ["a", "b"]) {
          const { dispatch, runners } = dispatchWith({ id });
          expect((await store.createDispatch(dispatch, runners)).created).toBe(true);
        }
        expect((await store.listRunners()).map((r) => r.dispatchId)).toEqual(["a", "b"]);
      });

      it("records nothing of a dispatch whose runner name is already taken", async () => {
        const a = dispatchWith({ id: "d1" });
        await store.createDispatch(a.dispatch, a.runners);
        const b = dispatchWith({ id: "d2", names: ["fresh", "d1-r0"] });
        await expect(store.createDispatch(b.dispatch, b.runners)).rejects.toThrow(/unique/i);
        expect(await store.getDispatch("d2")).toBeUndefined();
        expect(await store.getRunner("fresh")).toBeUndefined();
      });
    });

    describe("createDispatch with maxPending", () => {
      it("refuses a dispatch whose pending runners would overfill the queue, and still answers a key seen before", async () => {
        const a = dispatchWith({ id: "a", key: "ka", runners: 2 });
        expect((await store.createDispatch(a.dispatch, a.runners, { maxPending: 3 })).created).toBe(true);
        const exact = dispatchWith({ id: "b", runners: 1 });
        expect((await store.createDispatch(exact.dispatch, exact.runners, { maxPending: 3 })).created).toBe(true);
        const over = dispatchWith({ id: "c", runners: 1 });
        const err = await store.createDispatch(over.dispatch, over.runners, { maxPending: 3 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(QueueFullError);
        expect(err).toMatchObject({ pending: 3, limit: 3 });
        expect(await store.getDispatch("c")).toBeUndefined();
        const replay = dispatchWith({ id: "a2", key: "ka", runners: 2 });
        expect((await store.createDispatch(replay.dispatch, replay.runners, { maxPending: 3 })).dispatch.id).toBe("a");
        // Without the option nothing is counted.
        expect((await store.createDispatch(over.dispatch, over.runners)).created).toBe(true);
      });

      it("never overshoots the queue when dispatches arrive at once through several stores", async () => {
        const stores = [store, await open(), await open()];
        const results = await Promise.allSettled(
          Array.from({ length: 30 }, (_, i) => {
            const { dispatch, runners } = dispatchWith({ id: `d${i}`, runners: 2 });
            return stores[i % stores.length]!.createDispatch(dispatch, runners, { maxPending: 11 });
          }),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
        const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
        expect(refused).toHaveLength(25);
        for (const r of refused) expect(r.reason).toBeInstanceOf(QueueFullError);
        expect(await store.countRunners(["pending"])).toBe(10);
      });
    });

    describe("transition", () => {
      async function seed(): Promise<RunnerRecord> {
        const { dispatch, runners } = dispatchWith({ id: "d1" });
        return (await store.createDispatch(dispatch, runners)).runners[0]!;
      }

      it("changes state only from an expected state and appends to the history, oldest first", async () => {
        const r = await seed();
        const launching = await store.transition(r.name, ["pending"], "launching", "creating credentials", { launchAttempts: 1 }, at(1000));
        expect(launching?.state).toBe("launching");
        expect(launching?.reason).toBe("creating credentials");
        expect(launching?.launchAttempts).toBe(1);
        expect(launching?.updatedAt).toBe(iso(1000));

        expect(await store.transition(r.name, ["pending"], "failed", "queue timeout", {}, at(2000))).toBeUndefined();
        const unchanged = await store.getRunner(r.name);
        expect(unchanged?.state).toBe("launching");
        expect(unchanged?.history).toHaveLength(2);

        const running = await store.transition(
          r.name,
          ["launching"],
          "running",
          "instance ready",
          { instanceId: "inst-1", forgejoRunnerId: 42, launchedAt: iso(3000), expiresAt: iso(3000 + 1_800_000) },
          at(3000),
        );
        expect(running).toMatchObject({
          state: "running",
          instanceId: "inst-1",
          forgejoRunnerId: 42,
          launchedAt: iso(3000),
          expiresAt: iso(1_803_000),
        });
        expect(running?.finishedAt).toBeUndefined();

        const done = await store.transition(r.name, ["running", "finishing"], "done", "job finished", {}, at(4000));
        expect(done?.finishedAt).toBe(iso(4000));
        expect(done?.history).toEqual([
          { at: iso(0), from: null, to: "pending", reason: "accepted, waiting for a launch slot" },
          { at: iso(1000), from: "pending", to: "launching", reason: "creating credentials" },
          { at: iso(3000), from: "launching", to: "running", reason: "instance ready" },
          { at: iso(4000), from: "running", to: "done", reason: "job finished" },
        ]);
      });

      it("keeps an explicit finish time and ignores a patch reason in favour of the transition's", async () => {
        const r = await seed();
        const failed = await store.transition(
          r.name,
          ["pending"],
          "failed",
          "queue timeout",
          { finishedAt: iso(500), reason: "ignored" },
          at(900),
        );
        expect(failed?.finishedAt).toBe(iso(500));
        expect(failed?.reason).toBe("queue timeout");
      });

      it("records the outcome given on entering finishing, keeps it to the end and across a reopen", async () => {
        const r = await seed();
        expect(r.outcome).toBeUndefined();
        await store.transition(r.name, ["pending"], "launching", "slot", {}, at(1000));
        expect((await store.getRunner(r.name))?.outcome).toBeUndefined();
        const finishing = await store.transition(r.name, ["launching"], "finishing", "failing: cancelled", { outcome: "failed" }, at(2000));
        expect(finishing).toMatchObject({ state: "finishing", reason: "failing: cancelled", outcome: "failed" });
        expect(await store.listRunners({ states: ["finishing"] })).toEqual([finishing]);
        const failed = await store.transition(r.name, ["finishing"], "failed", "cancelled", {}, at(3000));
        expect(failed).toMatchObject({ state: "failed", outcome: "failed" });
        const again = await open();
        expect((await again.getRunner(r.name))?.outcome).toBe("failed");
      });

      it("takes an outcome through update, and from a record as created", async () => {
        const { dispatch, runners } = dispatchWith({ id: "d2", runners: 2 });
        runners[1]!.outcome = "done";
        await store.createDispatch(dispatch, runners);
        expect((await store.getRunner("d2-r1"))?.outcome).toBe("done");
        expect(await store.update("d2-r0", { outcome: "done" })).toMatchObject({ state: "pending", outcome: "done" });
        expect((await store.update("d2-r0", { outcome: "failed" }))?.outcome).toBe("failed");
        // An update that does not name it leaves it.
        expect((await store.update("d2-r0", { launchAttempts: 1 }))?.outcome).toBe("failed");
      });

      it("returns undefined for an unknown runner", async () => {
        expect(await store.transition("ghost", ["pending"], "launching", "x")).toBeUndefined();
      });

      it("lets exactly one of many concurrent transitions from the same state win", async () => {
        const r = await seed();
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.transition(r.name, ["pending"], "launching", `attempt ${i}`, { launchAttempts: 1 })),
        );
        expect(results.filter((x) => x !== undefined)).toHaveLength(1);
        expect((await store.getRunner(r.name))?.history).toHaveLength(2);
      });
    });

    describe("update", () => {
      it("changes fields without a state change or a history entry", async () => {
        const { dispatch, runners } = dispatchWith({ id: "d1" });
        await store.createDispatch(dispatch, runners);
        const updated = await store.update("d1-r0", { instanceId: "inst-9", launchAttempts: 2, reason: "retrying launch" }, at(5000));
        expect(updated).toMatchObject({
          state: "pending",
          instanceId: "inst-9",
          launchAttempts: 2,
          reason: "retrying launch",
          updatedAt: iso(5000),
        });
        expect(updated?.history).toHaveLength(1);
        const again = await store.update("d1-r0", { launchAttempts: 3 });
        expect(again?.instanceId).toBe("inst-9");
        expect(await store.update("ghost", { launchAttempts: 1 })).toBeUndefined();
      });
    });

    describe("listRunners and countRunners", () => {
      beforeEach(async () => {
        const specs = [
          dispatchWith({
            id: "a",
            runners: 2,
            createdAtMs: 3000,
            labels: ["linux", "medium"],
            scope: { level: "organization", owner: "acme" },
          }),
          dispatchWith({
            id: "b",
            runners: 1,
            createdAtMs: 1000,
            labels: ["linux", "large"],
            scope: { level: "instance" },
            runner: { job: { id: 7 } },
          }),
          dispatchWith({
            id: "c",
            names: ["c-z", "c-a"],
            createdAtMs: 2000,
            labels: ["macos"],
            scope: { level: "repository", owner: "acme", name: "app" },
          }),
        ];
        for (const s of specs) await store.createDispatch(s.dispatch, s.runners);
        await store.transition("a-r1", ["pending"], "launching", "launching");
        await store.transition("c-a", ["pending"], "failed", "no capacity");
      });

      it("orders by creation time, then name", async () => {
        expect((await store.listRunners()).map((r) => r.name)).toEqual(["b-r0", "c-a", "c-z", "a-r0", "a-r1"]);
      });

      it("filters by state, labels, scope key, job, dispatch, and limits", async () => {
        const names = async (f: Parameters<Store["listRunners"]>[0]) => (await store.listRunners(f)).map((r) => r.name);
        expect(await names({ states: ["pending"] })).toEqual(["b-r0", "c-z", "a-r0"]);
        expect(await names({ states: ["launching", "failed"] })).toEqual(["c-a", "a-r1"]);
        expect(await names({ states: [] })).toEqual([]);
        expect(await names({ labels: ["linux"] })).toEqual(["b-r0", "a-r0", "a-r1"]);
        expect(await names({ labels: ["medium", "linux"] })).toEqual(["a-r0", "a-r1"]);
        expect(await names({ labels: ["linux", "macos"] })).toEqual([]);
        expect(await names({ labels: [] })).toHaveLength(5);
        expect(await names({ scopeKey: "org:acme" })).toEqual(["a-r0", "a-r1"]);
        expect(await names({ scopeKey: "repo:acme/app" })).toEqual(["c-a", "c-z"]);
        expect(await names({ jobId: 7 })).toEqual(["b-r0"]);
        expect(await names({ dispatchId: "c" })).toEqual(["c-a", "c-z"]);
        expect(await names({ states: ["pending"], limit: 2 })).toEqual(["b-r0", "c-z"]);
        expect(await names({ states: ["pending"], labels: ["linux"], scopeKey: "org:acme" })).toEqual(["a-r0"]);
        expect(await names({ limit: 0 })).toEqual([]);
      });

      it("returns each runner's full history", async () => {
        const [c] = await store.listRunners({ dispatchId: "c", states: ["failed"] });
        expect(c?.history.map((t) => [t.from, t.to])).toEqual([
          [null, "pending"],
          ["pending", "failed"],
        ]);
      });

      it("lists the same runners without their histories", async () => {
        for (const filter of [{}, { states: ["pending"] as const }, { labels: ["linux"], limit: 2 }, { dispatchId: "c" }]) {
          const full = await store.listRunners(filter);
          const bare = await store.listRunnersWithoutHistory(filter);
          expect(bare).toEqual(full.map(({ history: _history, ...fields }) => fields));
          for (const r of bare) expect(r).not.toHaveProperty("history");
        }
      });

      it("counts runners in the given states", async () => {
        expect(await store.countRunners(["pending"])).toBe(3);
        expect(await store.countRunners(["pending", "launching", "failed"])).toBe(5);
        expect(await store.countRunners(["running"])).toBe(0);
        expect(await store.countRunners([])).toBe(0);
      });

      it("keeps a dispatch's runners in the order they were given", async () => {
        expect((await store.getDispatch("c"))?.runnerNames).toEqual(["c-z", "c-a"]);
      });
    });

    describe("pruneFinished", () => {
      it("deletes terminal runners finished before the cutoff, their history, and dispatches left empty", async () => {
        const old = dispatchWith({ id: "old", key: "old-key", runners: 2 });
        const mixed = dispatchWith({ id: "mixed", runners: 2 });
        for (const d of [old, mixed]) await store.createDispatch(d.dispatch, d.runners);
        await store.transition("old-r0", ["pending"], "failed", "queue timeout", {}, at(10_000));
        await store.transition("old-r1", ["pending"], "done", "job finished", {}, at(20_000));
        await store.transition("mixed-r0", ["pending"], "done", "job finished", {}, at(15_000));
        await store.transition("mixed-r1", ["pending"], "done", "job finished", {}, at(90_000));

        expect(await store.pruneFinished(at(50_000))).toBe(3);
        expect(await store.getRunner("old-r0")).toBeUndefined();
        expect(await store.getRunner("mixed-r0")).toBeUndefined();
        expect(await store.getRunner("mixed-r1")).toBeDefined();
        expect(await store.getDispatch("old")).toBeUndefined();
        expect(await store.getDispatchByKey("old-key")).toBeUndefined();
        expect((await store.getDispatch("mixed"))?.runnerNames).toEqual(["mixed-r1"]);
        expect(await store.pruneFinished(at(50_000))).toBe(0);

        // The key and the names are free again, and a reused name starts with a fresh history.
        const reuse = dispatchWith({ id: "new", key: "old-key", names: ["old-r0"], createdAtMs: 60_000 });
        const res = await store.createDispatch(reuse.dispatch, reuse.runners);
        expect(res.created).toBe(true);
        expect(res.runners[0]?.history).toHaveLength(1);
      });

      it("keeps live runners however old they are", async () => {
        const { dispatch, runners } = dispatchWith({ id: "d1", runners: 2 });
        await store.createDispatch(dispatch, runners);
        await store.transition("d1-r1", ["pending"], "running", "instance ready", {}, at(1000));
        expect(await store.pruneFinished(at(10_000_000))).toBe(0);
        expect(await store.countRunners(["pending", "running"])).toBe(2);
        expect(await store.getDispatch("d1")).toBeDefined();
      });
    });

    describe("durability and sharing", () => {
      it("keeps everything across close and reopen", async () => {
        const { dispatch, runners } = dispatchWith({ id: "d1", key: "k1", runners: 2, env: { TOKENISH: "value" } });
        await store.createDispatch(dispatch, runners);
        await store.transition("d1-r0", ["pending"], "launching", "launching", { launchAttempts: 1 }, at(1000));
        const before = await store.listRunners();
        await store.close();
        const reopened = await open();
        expect(await reopened.listRunners()).toEqual(before);
        expect(await reopened.getDispatchByKey("k1")).toEqual(await reopened.getDispatch("d1"));
        expect((await reopened.getRunner("d1-r1"))?.env).toEqual({ TOKENISH: "value" });
      });

      it("reports no write problem while records can be written", async () => {
        expect(await store.writeProblem()).toBeUndefined();
        const { dispatch, runners } = dispatchWith({ id: "d1" });
        await store.createDispatch(dispatch, runners);
        expect(await store.writeProblem()).toBeUndefined();
      });

      it("tolerates close being called twice", async () => {
        await store.close();
        await expect(store.close()).resolves.toBeUndefined();
      });

      it("shares state, idempotency keys and compare-and-set between two stores on the same data", async () => {
        const other = await open();
        const a = dispatchWith({ id: "d1", key: "shared", runners: 1 });
        const b = dispatchWith({ id: "d2", key: "shared", runners: 1 });
        expect((await store.createDispatch(a.dispatch, a.runners)).created).toBe(true);
        const seen = await other.createDispatch(b.dispatch, b.runners);
        expect(seen.created).toBe(false);
        expect(seen.dispatch.id).toBe("d1");

        expect(await other.transition("d1-r0", ["pending"], "launching", "taken by the other replica")).toBeDefined();
        expect(await store.transition("d1-r0", ["pending"], "launching", "too late")).toBeUndefined();
        expect((await store.getRunner("d1-r0"))?.reason).toBe("taken by the other replica");
      });
    });

    describe("fenced", () => {
      it("a view whose lease is held writes and reads as the store itself", async () => {
        const fenced = store.fenced(await harness.holdingFence());
        const { dispatch, runners } = dispatchWith({ id: "d1", runners: 2 });
        expect((await fenced.createDispatch(dispatch, runners)).created).toBe(true);
        expect(await fenced.transition("d1-r0", ["pending"], "launching", "slot", { launchAttempts: 1 }, at(1000))).toMatchObject({
          state: "launching",
        });
        expect(await fenced.transition("d1-r0", ["pending"], "launching", "again", {}, at(1000))).toBeUndefined();
        expect(await fenced.update("d1-r1", { reason: "waiting" }, at(1000))).toMatchObject({ reason: "waiting" });
        await fenced.transition("d1-r1", ["pending"], "failed", "gave up", {}, at(2000));
        expect(await fenced.pruneFinished(at(3000))).toBe(1);
        expect(await store.listRunners()).toEqual(await fenced.listRunners());
        expect((await store.getRunner("d1-r0"))?.history.map((t) => t.to)).toEqual(["pending", "launching"]);
        expect(await fenced.writeProblem()).toBeUndefined();
      });
    });
  });
}
