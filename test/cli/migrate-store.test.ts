import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Store } from "../../src/store/types.js";
import { freePort } from "../helpers/free-port.js";
import { tempDir } from "../helpers/tmp.js";
import { TEST_PG_URL, freshSchema } from "../store/postgres-harness.js";
import type { PgSchema } from "../store/postgres-harness.js";
import { at, dispatchWith } from "../store/records.js";
import { memoryIo } from "./memory-io.js";

const PW = "migrate-pw-never-shown";
/** The test server trusts every login, so any password works; it must never be printed. */
const URL_WITH_PW = withPassword(TEST_PG_URL, PW);

function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

/** A SQLite store with records in every shape: keys, several runners, histories, outcomes, patches. */
async function populate(store: Store): Promise<void> {
  const a = dispatchWith({
    id: "a",
    key: "job:7:1",
    runners: 2,
    env: { SECRET_ENV: "v" },
    runner: { job: { id: 7, attempt: 1, handle: "h7" } },
  });
  const b = dispatchWith({
    id: "b",
    names: ["b-z", "b-a"],
    createdAtMs: 5000,
    labels: ["linux", "large"],
    scope: { level: "repository", owner: "acme", name: "app" },
  });
  await store.createDispatch(a.dispatch, a.runners);
  await store.createDispatch(b.dispatch, b.runners);
  await store.transition(
    "a-r0",
    ["pending"],
    "launching",
    "creating credentials",
    { launchAttempts: 1, registration: "ephemeral" },
    at(1000),
  );
  await store.transition(
    "a-r0",
    ["launching"],
    "running",
    "instance ready",
    { instanceId: "i-1", forgejoRunnerId: 99, launchedAt: at(2000).toISOString(), expiresAt: at(9000).toISOString() },
    at(2000),
  );
  await store.transition("a-r0", ["running"], "finishing", "failing: job lost", { outcome: "failed" }, at(3000));
  await store.transition("a-r0", ["finishing"], "failed", "job lost", {}, at(4000));
  await store.transition("b-a", ["pending"], "launching", "creating credentials", {}, at(6000));
}

async function run(args: string[]) {
  const m = memoryIo();
  const code = await runCli(["migrate-store", ...args], m.io);
  return { code, out: m.stdout(), err: m.stderr(), all: m.all() };
}

describe("forgejo-nsc migrate-store", () => {
  let tmp: ReturnType<typeof tempDir>;
  let schema: PgSchema;
  let sqlite: string;
  beforeEach(async () => {
    tmp = tempDir("fnsc-migrate-");
    schema = freshSchema();
    sqlite = join(tmp.dir, "dispatcher.db");
    const store = openSqliteStore(sqlite);
    await populate(store);
    await store.close();
  });
  afterEach(async () => {
    await schema.cleanup();
    tmp.cleanup();
  });

  it("copies dispatches, runners, histories and outcomes row for row, and prints the counts without the password", async () => {
    const r = await run(["--from", `sqlite:${sqlite}`, "--to", URL_WITH_PW, "--schema", schema.name]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      "copied 2 dispatches, 4 runners (3 not finished) and 9 transitions\n" +
        `  from sqlite:${sqlite}\n  to   ${TEST_PG_URL} (schema ${schema.name})\n` +
        `next: set dispatcher.store (or store_file) and dispatcher.postgres.schema: ${schema.name}, remove dispatcher.state_path, start the dispatcher\n`,
    );
    expect(r.all).not.toContain(PW);

    const before = openSqliteStore(sqlite);
    const after = await schema.open();
    try {
      expect(await after.listRunners()).toEqual(await before.listRunners());
      for (const id of ["a", "b"]) expect(await after.getDispatch(id)).toEqual(await before.getDispatch(id));
      expect(await after.getDispatchByKey("job:7:1")).toEqual(await before.getDispatchByKey("job:7:1"));
      expect((await after.getRunner("a-r0"))?.outcome).toBe("failed");
      // The copy is a working store: transitions continue the histories.
      expect((await after.transition("b-a", ["launching"], "running", "instance ready", {}, at(7000)))?.history).toHaveLength(3);
    } finally {
      await before.close();
      await after.close();
    }
  });

  it("reads the URL from --to-file", async () => {
    const file = join(tmp.dir, "store-url");
    writeFileSync(file, `${URL_WITH_PW}\n`, { mode: 0o600 });
    const r = await run(["--from", sqlite, "--to-file", file, "--schema", schema.name]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^copied 2 dispatches, 4 runners/);
  });

  it("refuses a target that already holds records and copies nothing more", async () => {
    expect((await run(["--from", `sqlite:${sqlite}`, "--to", URL_WITH_PW, "--schema", schema.name])).code).toBe(0);
    const again = await run(["--from", `sqlite:${sqlite}`, "--to", URL_WITH_PW, "--schema", schema.name]);
    expect(again.code).toBe(1);
    expect(again.out).toBe("");
    expect(again.err).toBe(
      `forgejo-nsc: ${TEST_PG_URL} (schema ${schema.name}) already holds 2 dispatches and 4 runners; migrate-store copies only into an empty store, so nothing was copied. ` +
        "Point --to at an empty database, or --schema at a new schema, or empty this one (TRUNCATE runner_transitions, runners, dispatches) if its records are not needed\n",
    );
    const store = await schema.open();
    try {
      expect(await store.countRunners(["pending", "launching", "failed"])).toBe(4);
    } finally {
      await store.close();
    }
  });

  it("fails with the server's address, not the password, when PostgreSQL cannot be reached", async () => {
    const port = await freePort();
    const r = await run(["--from", sqlite, "--to", `postgres://fnsc:${PW}@127.0.0.1:${port}/fnsc`]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `forgejo-nsc: state database postgres://fnsc@127.0.0.1:${port}/fnsc: cannot connect (ECONNREFUSED); start the server or check dispatcher.store's host and port and the network; the dispatcher keeps retrying by itself\n`,
    );
  });

  it("refuses a SQLite path with no database rather than copying an empty one", async () => {
    const r = await run(["--from", `sqlite:${join(tmp.dir, "typo.db")}`, "--to", URL_WITH_PW, "--schema", schema.name]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `forgejo-nsc: there is no SQLite state database at ${join(tmp.dir, "typo.db")}; name the dispatcher's dispatcher.state_path file\n`,
    );
  });

  it.each([
    [[], "--from is required: the SQLite file, as sqlite:<path>"],
    [["--from", "x.db"], "give exactly one of --to and --to-file"],
    [["--from", "x.db", "--to", URL_WITH_PW, "--to-file", "f"], "give exactly one of --to and --to-file"],
    [["--from", URL_WITH_PW, "--to", URL_WITH_PW], "--from names PostgreSQL; migrate-store copies from SQLite into PostgreSQL only"],
    [["--from", "x.db", "--to", `mysql://u:${PW}@h/d`], "--to must be a postgres:// or postgresql:// URL (got mysql://u:…@…)"],
    [["--from", "x.db", "--to", URL_WITH_PW, "extra"], "unexpected argument #1 (this command takes only flags)"],
  ])("answers usage errors with exit 2: %j", async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err.split("\n")[0]).toBe(`forgejo-nsc: ${message}`);
    expect(r.all).not.toContain(PW);
  });
});
