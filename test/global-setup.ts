import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatReport, readLedger, scanLogDirectory } from "./helpers/secret-scan.js";
import { KNOWN_TEST_SECRETS, LEDGER_SUBDIR, LOGS_SUBDIR, SCAN_DIR_ENV } from "./helpers/secrets.js";
import { removeTree } from "./helpers/tmp.js";

/**
 * The whole-suite secret scan. Before any worker starts, a scan directory is created and its path
 * put in the environment (workers and the processes tests start inherit it); captureLogger and the
 * processes tests start append their output there. After the last test, every file is read and
 * the run fails if a test secret appears in any of them.
 *
 * FORGEJO_NSC_KEEP_TEST_LOGS=1 keeps the directory after a clean run (it is always kept after a leak).
 */
let dir: string | undefined;

export function setup(): void {
  dir = mkdtempSync(join(tmpdir(), "forgejo-nsc-test-logs-"));
  mkdirSync(join(dir, LOGS_SUBDIR), { mode: 0o700 });
  mkdirSync(join(dir, LEDGER_SUBDIR), { mode: 0o700 });
  process.env[SCAN_DIR_ENV] = dir;
}

export function teardown(): void {
  if (!dir) return;
  const report = scanLogDirectory(dir, [...KNOWN_TEST_SECRETS, ...readLedger(dir)]);
  const text = formatReport(report);
  if (report.findings.length > 0) {
    // A throw in a global teardown is printed but does not change vitest's exit code by itself.
    process.exitCode = 1;
    throw new Error(
      `${text}\nThe logs are kept in ${dir}. A secret reached a log: find the log call (or the redaction path in src/http/logger.ts) and keep the value out of it.`,
    );
  }
  process.stdout.write(`${text}${process.env.FORGEJO_NSC_KEEP_TEST_LOGS ? ` (logs kept in ${dir})` : ""}\n`);
  if (report.files === 0) process.stdout.write("secret scan: note: no test wrote any log in this run\n");
  if (!process.env.FORGEJO_NSC_KEEP_TEST_LOGS) removeTree(dir);
}
