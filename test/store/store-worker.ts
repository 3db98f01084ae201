/**
 * A second process on the same state database, driven by sqlite-store.test.ts: it opens the store,
 * says "ready", waits for "go" on stdin so both processes start together, then races the other
 * process on the same idempotency keys and compare-and-set transitions and prints what it won.
 */
import { createInterface } from "node:readline";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { dispatchWith } from "./records.js";

const [path, worker, countText] = process.argv.slice(2);
if (!path || !worker || !countText) throw new Error("usage: store-worker <db path> <worker id> <key count>");
const count = Number(countText);

const store = openSqliteStore(path, { busyTimeoutMs: 20_000 });
process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) if (line === "go") break;
lines.close();

const created: string[] = [];
const winners: Record<string, string> = {};
for (let i = 0; i < count; i++) {
  const { dispatch, runners } = dispatchWith({ id: `${worker}-d${i}`, key: `key-${i}`, runners: 1, createdAtMs: i });
  const res = await store.createDispatch(dispatch, runners);
  if (res.created) created.push(`key-${i}`);
  winners[`key-${i}`] = res.dispatch.id;
}
const transitioned: string[] = [];
for (let i = 0; i < count; i++) {
  const dispatch = await store.getDispatchByKey(`key-${i}`);
  const name = dispatch?.runnerNames[0];
  if (name && (await store.transition(name, ["pending"], "launching", `claimed by ${worker}`))) transitioned.push(name);
}
await store.close();
process.stdout.write(`${JSON.stringify({ created, winners, transitioned })}\n`);
