import type { Readable } from "node:stream";

/**
 * Everything a command touches outside its arguments, so the same code runs from the real binary
 * and in tests (which pass memory streams, their own env and an abort signal).
 */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  stdin: Readable;
  /** Whether stdout is a terminal (clears the screen between --watch refreshes). */
  stdoutIsTty: boolean;
  now(): Date;
  /** Aborted on SIGINT/SIGTERM; --watch stops when it fires. */
  signal: AbortSignal;
}

export function processIo(signal: AbortSignal): CliIo {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    env: process.env,
    // Lazy: touching process.stdin opens it, and only provision --forgejo-password-stdin reads it.
    get stdin() {
      return process.stdin;
    },
    stdoutIsTty: Boolean(process.stdout.isTTY),
    now: () => new Date(),
    signal,
  };
}
