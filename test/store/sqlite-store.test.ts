import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SoleLease } from "../../src/ha/lease.js";
import { LATEST_SCHEMA_VERSION, MIGRATIONS, SchemaTooNewError } from "../../src/store/migrations.js";
import { openStore } from "../../src/store/open-store.js";
import { StateDatabaseError, openSqliteStore } from "../../src/store/sqlite-store.js";
import type { SqliteStore } from "../../src/store/sqlite-store.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { dispatchWith } from "./records.js";
import { runStoreContract } from "./store-contract.js";

runStoreContract("SqliteStore on a temp file", async () => {
  const tmp = tempDir("fnsc-store-");
  const path = join(tmp.dir, "state", "dispatcher.db");
  return {
    open: async () => openSqliteStore(path),
    // The single replica's lease: always held; the SQLite store has no lease table to check.
    holdingFence: async () => new SoleLease("dispatcher"),
    cleanup: async () => tmp.cleanup(),
  };
});

describe("SqliteStore on disk", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir("fnsc-sqlite-");
  });
  afterEach(() => tmp.cleanup());

  it("creates the directory and a private database file, in WAL mode, at the latest schema", async () => {
    const path = join(tmp.dir, "a", "b", "dispatcher.db");
    const store = openSqliteStore(path);
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(tmp.dir, "a", "b")).mode & 0o777).toBe(0o700);
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
      const versions = raw.prepare("SELECT version FROM schema_migrations ORDER BY version").all() as { version: number }[];
      expect(versions.map((v) => v.version)).toEqual(Array.from({ length: LATEST_SCHEMA_VERSION }, (_, i) => i + 1));
      const tables = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map(
        (t) => t.name,
      );
      expect(tables).toEqual(["dispatches", "runner_transitions", "runners", "schema_migrations"]);
      const indexes = (
        raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runners' AND sql IS NOT NULL").all() as {
          name: string;
        }[]
      ).map((t) => t.name);
      expect(indexes).toEqual(
        expect.arrayContaining(["runners_by_state", "runners_by_scope_key", "runners_by_job_id", "runners_by_instance_id"]),
      );
    } finally {
      raw.close();
    }
  });

  it("migrates an empty existing file", async () => {
    const path = join(tmp.dir, "empty.db");
    writeFileSync(path, "");
    const store = openSqliteStore(path);
    const { dispatch, runners } = dispatchWith({ id: "d1" });
    expect((await store.createDispatch(dispatch, runners)).created).toBe(true);
    await store.close();
  });

  it("applies no migration twice when reopened", async () => {
    const path = join(tmp.dir, "x.db");
    const log = captureLogger();
    await openSqliteStore(path, { logger: log.logger }).close();
    await openSqliteStore(path, { logger: log.logger }).close();
    const migrated = log.lines
      .map((l) => JSON.parse(l) as { msg: string; from?: number; to?: number })
      .filter((l) => l.msg === "state database schema migrated");
    expect(migrated).toEqual([expect.objectContaining({ from: 0, to: LATEST_SCHEMA_VERSION })]);
  });

  it("refuses a database written by a newer release and leaves it untouched", async () => {
    const path = join(tmp.dir, "newer.db");
    await openSqliteStore(path).close();
    const raw = new Database(path);
    raw
      .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
      .run(LATEST_SCHEMA_VERSION + 5, "from the future", new Date().toISOString());
    raw.close();

    let error: unknown;
    try {
      openSqliteStore(path);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SchemaTooNewError);
    expect((error as Error).message).toContain(`written by a newer forgejo-nsc (schema ${LATEST_SCHEMA_VERSION + 5}`);
    expect((error as Error).message).toContain("upgrade or point dispatcher.state_path elsewhere");

    const check = new Database(path, { readonly: true });
    expect(check.prepare("SELECT MAX(version) AS v FROM schema_migrations").get()).toEqual({ v: LATEST_SCHEMA_VERSION + 5 });
    check.close();
  });

  it("says so when the file is not a SQLite database", () => {
    const path = join(tmp.dir, "config.yaml");
    writeFileSync(path, "listen: 127.0.0.1:8080\n".repeat(200));
    expect(() => openSqliteStore(path)).toThrow(StateDatabaseError);
    expect(() => openSqliteStore(path)).toThrow(/is not a SQLite database; point dispatcher.state_path/);
    expect(readFileSync(path, "utf8")).toBe("listen: 127.0.0.1:8080\n".repeat(200));
  });

  it("says so when the directory cannot be created", () => {
    const blocker = join(tmp.dir, "file");
    writeFileSync(blocker, "");
    expect(() => openSqliteStore(join(blocker, "sub", "x.db"))).toThrow(/cannot create state database .*change dispatcher\.state_path/);
  });

  it("keeps idempotency and compare-and-set correct across two processes on one file", async () => {
    const path = join(tmp.dir, "shared.db");
    await openSqliteStore(path).close();
    const keys = 40;
    const workerPath = fileURLToPath(new URL("./store-worker.ts", import.meta.url));
    const workers = ["w1", "w2"].map((id) => {
      const child = spawn(process.execPath, ["--import", "tsx", workerPath, path, id, String(keys)], { stdio: ["pipe", "pipe", "pipe"] });
      const out = { stdout: "", stderr: "", code: undefined as number | null | undefined };
      child.stdout.on("data", (d: Buffer) => (out.stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out.stderr += d.toString()));
      child.on("exit", (code) => (out.code = code));
      return { child, out };
    });
    for (const w of workers)
      await waitFor(() => w.out.stdout.includes("ready\n") || w.out.code !== undefined, { timeoutMs: 20_000, what: "worker ready" });
    for (const w of workers) w.child.stdin.write("go\n");
    for (const w of workers) await waitFor(() => w.out.code !== undefined, { timeoutMs: 30_000, what: "worker exit" });
    for (const w of workers) expect(w.out.code, w.out.stderr).toBe(0);

    type Result = { created: string[]; winners: Record<string, string>; transitioned: string[] };
    const results = workers.map((w) => JSON.parse(w.out.stdout.split("\n").filter(Boolean).at(-1)!) as Result);
    const created = results.flatMap((r) => r.created).sort();
    expect(created).toEqual(Array.from({ length: keys }, (_, i) => `key-${i}`).sort());
    for (let i = 0; i < keys; i++) expect(results[0]!.winners[`key-${i}`]).toBe(results[1]!.winners[`key-${i}`]);
    const transitioned = results.flatMap((r) => r.transitioned);
    expect(transitioned).toHaveLength(keys);
    expect(new Set(transitioned).size).toBe(keys);

    const store = openSqliteStore(path);
    expect(await store.countRunners(["launching"])).toBe(keys);
    expect(await store.countRunners(["pending"])).toBe(0);
    for (const r of await store.listRunners()) expect(r.history).toHaveLength(2);
    await store.close();
  });

  it("never puts env values or request contents into logs or error messages", async () => {
    const secret = "ghp_SUPERSECRETVALUE1234567890";
    const log = captureLogger("trace");
    const path = join(tmp.dir, "secret.db");
    const store = openSqliteStore(path, { logger: log.logger });
    const a = dispatchWith({ id: "d1", key: "k", env: { API_TOKEN: secret } });
    a.dispatch.request = { note: secret };
    await store.createDispatch(a.dispatch, a.runners);
    const dup = dispatchWith({ id: "d2", names: ["d1-r0"], env: { API_TOKEN: secret } });
    dup.dispatch.request = { note: secret };
    const err = await store.createDispatch(dup.dispatch, dup.runners).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateDatabaseError);
    expect(String((err as Error).message)).not.toContain(secret);
    expect(String((err as Error).stack)).not.toContain(secret);
    await store.transition("d1-r0", ["pending"], "failed", "cancelled");
    await store.close();
    expect(log.lines.length).toBeGreaterThan(0);
    expect(log.text()).not.toContain(secret);
    // The value is stored (a restart must relaunch with it), which is why the file is private.
    expect(readFileSync(path).includes(secret)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe("openStore", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir("fnsc-open-");
  });
  afterEach(() => tmp.cleanup());

  it("opens a SQLite file for a path, with or without the sqlite: prefix", async () => {
    for (const p of [join(tmp.dir, "plain.db"), `sqlite:${join(tmp.dir, "prefixed.db")}`]) {
      const store = await openStore(p);
      const { dispatch, runners } = dispatchWith({ id: "d1" });
      expect((await store.createDispatch(dispatch, runners)).created).toBe(true);
      await store.close();
    }
    expect(existsSync(join(tmp.dir, "prefixed.db"))).toBe(true);
  });

  it("opens an in-memory store", async () => {
    const store = await openStore(":memory:");
    const { dispatch, runners } = dispatchWith({ id: "d1" });
    expect((await store.createDispatch(dispatch, runners)).created).toBe(true);
    await store.close();
  });

  it("rejects URLs other than postgres:// with a message naming the key and hiding credentials", async () => {
    // postgres:// URLs open the PostgreSQL store: test/store/postgres-open.test.ts.
    const err = await openStore("mysql://admin:hunter2@db/fnsc").catch((e: unknown) => e);
    expect((err as Error).message).toContain("dispatcher.state_path");
    expect((err as Error).message).not.toContain("hunter2");
  });
});

describe("migration 2: scopes in lower case", () => {
  it("lowers scope keys and scopes written by version 1, so caps and listings see them", async () => {
    // A version-1 database with a runner recorded under a mixed-case scope.
    const scope = JSON.stringify({ level: "repository", owner: "Example", name: "App" });
    await openedAfter(1, { state: "running", reason: "x", scope, scope_key: "repo:Example/App" }, async (store) => {
      expect(await store.listRunners({ scopeKey: "repo:example/app" })).toHaveLength(1);
      expect((await store.getRunner("r1"))!.scope).toEqual({ level: "repository", owner: "example", name: "app" });
    });
  });
});

describe("migration 3: where a finishing runner is headed", () => {
  it.each([
    ["finishing", "failing: cancelled through the API", "failed"],
    ["finishing", "finishing: job done", "done"],
    // Only a leading "failing: " meant failed; anything else ended done.
    ["finishing", "finishing: failing: x", "done"],
    ["finishing", "x failing: ", "done"],
    ["finishing", "Failing: x", "done"],
    ["finishing", "failing:x", "done"],
    // Runners not finishing are headed nowhere yet, or ended already.
    ["running", "failing: x", undefined],
    ["failed", "failing: x", undefined],
  ] as const)("a %s runner with reason %j gets outcome %s", async (state, reason, outcome) => {
    await openedAfter(2, { state, reason, scope: '{"level":"instance"}', scope_key: "instance" }, async (store) => {
      const r = (await store.getRunner("r1"))!;
      expect(r).toMatchObject({ state, reason });
      expect(r.outcome).toBe(outcome);
    });
  });
});

/**
 * A database file an older release left at schema `version`, holding runner r1 of dispatch d1 with
 * the given columns, opened (so migrated) by this release for `check`.
 */
async function openedAfter(
  version: number,
  runner: { state: string; reason: string; scope: string; scope_key: string },
  check: (store: SqliteStore) => Promise<void>,
): Promise<void> {
  const tmp = tempDir(`fnsc-v${version}-`);
  try {
    const path = join(tmp.dir, `v${version}.db`);
    const raw = new Database(path);
    raw.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT");
    for (const m of MIGRATIONS.filter((m) => m.version <= version)) {
      raw.exec(m.sql);
      raw
        .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
        .run(m.version, m.name, new Date().toISOString());
    }
    raw
      .prepare("INSERT INTO dispatches (id, request_hash, request, created_at) VALUES ('d1', 'h', '{}', '2026-11-01T00:00:00.000Z')")
      .run();
    raw
      .prepare(
        `INSERT INTO runners (name, dispatch_id, dispatch_index, state, reason, platform, labels, scope, scope_key, machine_type, image, ttl_ms, env, created_at, updated_at, queue_deadline)
         VALUES ('r1', 'd1', 0, @state, @reason, 'linux', '["l"]', @scope, @scope_key, '4x8', 'img', 60000, '{}', '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z', '2026-11-01T01:00:00.000Z')`,
      )
      .run(runner);
    raw.close();
    const store = openSqliteStore(path);
    try {
      await check(store);
    } finally {
      await store.close();
    }
  } finally {
    tmp.cleanup();
  }
}
