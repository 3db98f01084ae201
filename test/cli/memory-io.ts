import { Readable } from "node:stream";
import type { CliIo } from "../../src/cli/io.js";

/** A CliIo writing into memory, with a fixed clock unless `now` is given. */
export function memoryIo(
  opts: { env?: Record<string, string | undefined>; stdin?: string; now?: () => Date; signal?: AbortSignal; tty?: boolean } = {},
) {
  let out = "";
  let err = "";
  const io: CliIo = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    env: opts.env ?? {},
    stdin: Readable.from(opts.stdin !== undefined ? [Buffer.from(opts.stdin)] : []),
    stdoutIsTty: opts.tty ?? false,
    now: opts.now ?? (() => new Date()),
    signal: opts.signal ?? new AbortController().signal,
  };
  return { io, stdout: () => out, stderr: () => err, all: () => out + err };
}
