import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "./tmp.js";
import { waitFor } from "./wait.js";

describe("tempDir cleanup", () => {
  it("removes a directory another process is still writing into (retries ENOTEMPTY)", async () => {
    const tmp = tempDir("fnsc-tmp-race-");
    const sub = join(tmp.dir, "logs");
    // Another process writes files into the tree for a while, as a fake's last log line or a
    // process being killed does when a test ends.
    const writer = spawn(
      process.execPath,
      [
        "-e",
        `const fs = require("node:fs"); fs.mkdirSync(${JSON.stringify(sub)}); const end = Date.now() + 1000; let i = 0;
         while (Date.now() < end) { try { fs.writeFileSync(${JSON.stringify(sub)} + "/f" + i++, "x"); } catch {} }`,
      ],
      { stdio: "ignore" },
    );
    const exited = new Promise((resolve) => writer.on("exit", resolve));
    try {
      await waitFor(() => existsSync(sub) && readdirSync(sub).length > 100, { what: "the writer to be busy" });
      expect(() => tmp.cleanup()).not.toThrow();
      expect(existsSync(tmp.dir)).toBe(false);
    } finally {
      await exited;
    }
  });
});
