import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

/** Issue 10, item 16: `bench --json` writes one JSON document to stdout and nothing else. */
const ROOT = join(import.meta.dirname, "../..");

describe("bench/supervise.ts --json", () => {
  it("prints only the JSON document on stdout; progress goes to stderr", async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "bench/supervise.ts"),
        "--json",
        "--runners",
        "20",
        "--ticks",
        "1",
        "--churn",
        "1",
        "--process-ticks",
        "0",
        "--dispatches",
        "0",
      ],
      { cwd: ROOT, timeout: 120_000 },
    );
    const doc = JSON.parse(stdout) as { machine: string; supervision: { runners: number } };
    expect(doc.supervision.runners).toBe(20);
    expect(stderr).toContain("supervision phase starts at");
  });
});
