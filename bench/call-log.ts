import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/**
 * Counts the fake nsc's invocations from its call log (one JSON "start" line per process), reading
 * only what was appended since the last look: the "end" lines carry each call's stdout, so a
 * `list` of 2,000 instances adds about a megabyte and re-reading the whole log every tick would
 * cost the benchmark more than the dispatcher.
 */
export class CallLog {
  private offset = 0;
  private partial = "";

  constructor(
    private readonly path: string,
    /** What to count an invocation under; its command ("list", "destroy", …) by default. */
    private readonly keyOf: (entry: { argv: string[]; command: string }) => string = (e) => e.command,
  ) {
    this.since();
  }

  /** Invocations started since the previous call, by key. */
  since(): Record<string, number> {
    const fd = openSync(this.path, "r");
    const counts: Record<string, number> = {};
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(1 << 20);
      while (this.offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        const lines = (this.partial + buf.subarray(0, n).toString("utf8")).split("\n");
        this.partial = lines.pop() ?? "";
        for (const line of lines) {
          if (!line.startsWith('{"phase":"start"')) continue;
          const entry = JSON.parse(line) as { argv?: string[]; command?: string };
          if (entry.argv?.[0] === "__fake") continue;
          const key = this.keyOf({ argv: entry.argv ?? [], command: entry.command ?? "?" });
          counts[key] = (counts[key] ?? 0) + 1;
        }
      }
    } finally {
      closeSync(fd);
    }
    return counts;
  }
}
