import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { waitFor } from "./wait.js";

export interface HeldLock {
  /** Ends the other process's transaction (it commits) and waits until the lock is free. */
  release(): Promise<void>;
  /** Whether the other process has released the lock by itself (after `releaseAfterMs`). */
  released(): boolean;
}

/**
 * Another process takes the write lock of a SQLite file (BEGIN IMMEDIATE) and holds it until
 * `release()`, or for `releaseAfterMs` on its own (so it does not depend on our event loop).
 * Resolves once the lock is held.
 */
export async function holdWriteLock(path: string, opts: { releaseAfterMs?: number } = {}): Promise<HeldLock> {
  const sqlite = createRequire(import.meta.url).resolve("better-sqlite3");
  const script = `
    const Database = require(${JSON.stringify(sqlite)});
    const db = new Database(${JSON.stringify(path)});
    db.pragma("busy_timeout = 10000");
    db.exec("BEGIN IMMEDIATE");
    process.stdout.write("locked\\n");
    const release = () => { db.exec("COMMIT"); db.close(); process.stdout.write("released\\n"); process.exit(0); };
    process.stdin.on("data", release);
    ${opts.releaseAfterMs !== undefined ? `setTimeout(release, ${opts.releaseAfterMs});` : ""}
  `;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  await waitFor(() => out.includes("locked\n") || child.exitCode !== null, {
    timeoutMs: 20_000,
    what: "the other process to take the lock",
  });
  if (!out.includes("locked\n")) throw new Error(`the lock holder failed: ${err}`);
  const released = () => out.includes("released\n");
  return {
    released,
    async release() {
      if (!released()) child.stdin.write("go\n");
      await waitFor(released, { timeoutMs: 20_000, what: "the other process to release the lock" });
    },
  };
}
