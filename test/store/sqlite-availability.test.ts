import { monitorEventLoopDelay } from "node:perf_hooks";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HttpError } from "../../src/http/errors.js";
import { StateUnavailableError } from "../../src/store/errors.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { SqliteStore } from "../../src/store/sqlite-store.js";
import { captureLogger } from "../helpers/log-capture.js";
import { holdWriteLock } from "../helpers/sqlite-lock.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { dispatchWith } from "./records.js";

// The state database may be locked by another process or refuse writes for a while. The store must
// keep the event loop free meanwhile, fail with a 503-shaped error that says what to do, and tell
// /readyz until writes work again.

let tmp: ReturnType<typeof tempDir>;
let store: SqliteStore | undefined;
beforeEach(() => {
  tmp = tempDir("fnsc-store-avail-");
});
afterEach(async () => {
  await store?.close();
  store = undefined;
  tmp.cleanup();
});

async function storeWithRunner(path: string, opts: Parameters<typeof openSqliteStore>[1] = {}): Promise<SqliteStore> {
  store = openSqliteStore(path, opts);
  const { dispatch, runners } = dispatchWith({ id: "d1" });
  await store.createDispatch(dispatch, runners);
  return store;
}

describe("a lock held by another process", () => {
  it("does not block the event loop; the write waits and completes once the lock is released", async () => {
    const path = join(tmp.dir, "state.db");
    const s = await storeWithRunner(path);
    const lock = await holdWriteLock(path, { releaseAfterMs: 1_500 });
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    // The histogram only counts gaps between its own samples: let it take a few first.
    await waitFor(() => loop.count > 3, { what: "event-loop samples" });
    const write = s.transition("d1-r0", ["pending"], "launching", "claimed while locked");
    // The event loop keeps running while the write waits: timers fire, other calls are served.
    await waitFor(() => lock.released(), { timeoutMs: 10_000, what: "the other process to release the lock by itself" });
    const r = await write;
    loop.disable();
    expect(r?.state).toBe("launching");
    // SQLite's busy_timeout waited synchronously: the loop stood still for the whole 1.5 s hold.
    expect(loop.max / 1e6).toBeLessThan(500);
  });

  it("fails after busyTimeoutMs with a 503 that names the lock, reported by writeProblem until released", async () => {
    const path = join(tmp.dir, "state.db");
    const log = captureLogger("debug");
    const s = await storeWithRunner(path, { busyTimeoutMs: 300, logger: log.logger });
    expect(await s.writeProblem()).toBeUndefined();
    const lock = await holdWriteLock(path);
    const err = await s.transition("d1-r0", ["pending"], "launching", "x").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateUnavailableError);
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).statusCode).toBe(503);
    expect((err as HttpError).headers).toEqual({ "retry-after": "5" });
    expect((err as Error).message).toMatch(
      new RegExp(`state database ${path} is locked by another process \\(SQLITE_BUSY\\) .*second dispatcher on the same file`),
    );
    // Reads still work (WAL): the status API keeps answering.
    expect((await s.getRunner("d1-r0"))?.state).toBe("pending");
    expect(await s.writeProblem()).toMatch(/is locked by another process/);
    await lock.release();
    expect(await s.writeProblem()).toBeUndefined();
    expect((await s.transition("d1-r0", ["pending"], "launching", "after the lock"))?.state).toBe("launching");
    expect(log.text()).toMatch(/state database cannot be written/);
    expect(log.text()).toMatch(/state database accepts writes again/);
  });
});

describe("a disk that refuses writes", () => {
  it("turns SQLITE_FULL into a 503 that says the disk is full and what to do", async () => {
    const path = join(tmp.dir, "state.db");
    const s = await storeWithRunner(path);
    // Cap the file at its current size: the next write needing a new page fails as on a full disk.
    const db = (s as unknown as { db: Database.Database }).db;
    db.pragma(`max_page_count = ${Number(db.pragma("page_count", { simple: true }))}`);
    const big = dispatchWith({ id: "d2", runners: 1, env: { PAD: "x".repeat(200_000) } });
    const err = await s.createDispatch(big.dispatch, big.runners).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateUnavailableError);
    expect((err as Error).message).toBe(
      `state database ${path} cannot be written: the disk is full (SQLITE_FULL); free space on its file system; the dispatcher keeps retrying by itself`,
    );
    expect(await s.getDispatch("d2")).toBeUndefined();
  });

  it("keeps programming errors what they are (not 503)", async () => {
    const s = await storeWithRunner(join(tmp.dir, "state.db"));
    const again = dispatchWith({ id: "d1" });
    const err = await s.createDispatch(again.dispatch, again.runners).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(StateUnavailableError);
    expect((err as Error).message).toMatch(/dispatch ids and runner names must be unique/);
  });
});
