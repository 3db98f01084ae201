import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "../../src/http/logger.js";
import type { Logger } from "../../src/http/logger.js";
import { LOGS_SUBDIR, scanDir } from "./secrets.js";

let captureFd: number | undefined;
let sinks = 0;

function openInScanDir(file: string): number | undefined {
  const dir = scanDir();
  if (!dir) return undefined;
  const logs = join(dir, LOGS_SUBDIR);
  mkdirSync(logs, { recursive: true });
  return openSync(join(logs, file), "a", 0o600);
}

/** Every captured line of this worker also goes to the whole-suite secret scan (test/global-setup.ts). */
function appendCaptured(lines: readonly string[]): void {
  if (lines.length === 0) return;
  captureFd ??= openInScanDir(`capture-${process.pid}.log`);
  if (captureFd !== undefined) writeSync(captureFd, `${lines.join("\n")}\n`);
}

/** A real pino logger whose JSON lines are kept in memory, so tests can assert secrets never appear. */
export function captureLogger(level = "debug"): { logger: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      const got = String(chunk).split("\n").filter(Boolean);
      lines.push(...got);
      appendCaptured(got);
      cb();
    },
  });
  return { logger: createLogger(level, "test", stream), lines, text: () => lines.join("\n") };
}

export interface ScanSink {
  /** Appends raw output (a child's stdout or stderr chunk) to this sink's file in the scan directory. */
  write(chunk: string | Buffer): void;
  close(): void;
  /** The file, or undefined when the suite runs without the global setup. */
  readonly path: string | undefined;
}

/**
 * A file in the scan directory for the output of a process a test starts (a daemon, Caddy), so the
 * whole-suite secret scan reads it too. `label` names the file, e.g. "dispatcher".
 */
export function scanSink(label: string): ScanSink {
  const file = `${label.replace(/[^A-Za-z0-9._-]/g, "_")}-${process.pid}-${++sinks}.log`;
  let fd = openInScanDir(file);
  const dir = scanDir();
  return {
    path: fd === undefined || !dir ? undefined : join(dir, LOGS_SUBDIR, file),
    write(chunk) {
      if (fd === undefined) return;
      if (typeof chunk === "string") writeSync(fd, chunk);
      else writeSync(fd, chunk);
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
