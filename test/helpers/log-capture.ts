import { Writable } from "node:stream";
import { createLogger } from "../../src/http/logger.js";
import type { Logger } from "../../src/http/logger.js";

/** A real pino logger whose JSON lines are kept in memory, so tests can assert secrets never appear. */
export function captureLogger(level = "debug"): { logger: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger(level, "test", stream), lines, text: () => lines.join("\n") };
}
