import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const RETRYABLE = new Set(["ENOTEMPTY", "EBUSY", "EPERM", "EMFILE", "ENFILE"]);
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Removes a directory tree while something may still write into it (a fake's last log line, a
 * process being killed). rmSync's maxRetries covers busy files, but its retries only retry the
 * final rmdir: a file created after it listed the directory still fails it with ENOTEMPTY, so the
 * whole removal is repeated until it succeeds or 10 s have passed.
 */
export function removeTree(dir: string): void {
  const deadline = Date.now() + 10_000;
  for (let attempt = 1; ; attempt++) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      return;
    } catch (err) {
      if (!RETRYABLE.has((err as NodeJS.ErrnoException).code ?? "") || Date.now() > deadline) throw err;
      Atomics.wait(sleepCell, 0, 0, Math.min(50 * attempt, 500));
    }
  }
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "fnsc-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => removeTree(dir) };
}
