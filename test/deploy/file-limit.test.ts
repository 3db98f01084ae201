import { execFile } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers/tmp.js";

const run = promisify(execFile);

/**
 * Issue 10, item 2: the daemons share one file limit with every connection and nsc process, and
 * container runtimes and systemd start services at a soft limit of 1024.
 */
describe("the packaging raises the file limit", () => {
  it("the container entry point raises the soft limit to the hard one before starting a daemon", async () => {
    const tmp = tempDir();
    try {
      // Stand-ins for the daemons the entry point execs: they report the limit they got.
      for (const name of ["forgejo-nsc-dispatcher", "forgejo-nsc-autoscaler", "forgejo-nsc"]) {
        const file = join(tmp.dir, name);
        writeFileSync(file, '#!/bin/sh\necho "nofile=$(ulimit -n)"\n');
        chmodSync(file, 0o755);
      }
      const env = { ...process.env, PATH: `${tmp.dir}:${process.env.PATH ?? ""}` };
      const start = async (program: string) =>
        (
          await run(
            "bash",
            ["-c", 'ulimit -S -n 256 && ulimit -H -n 4096 && exec sh deploy/container/entrypoint.sh "$@"', "bash", program],
            { env },
          )
        ).stdout.trim();
      expect(await start("dispatcher")).toBe("nofile=4096");
      expect(await start("autoscaler")).toBe("nofile=4096");
      // The CLI is not a server: left as it was.
      expect(await start("cli")).toBe("nofile=256");
    } finally {
      tmp.cleanup();
    }
  });

  it("the NixOS unit sets LimitNOFILE and the compose example a nofile ulimit", () => {
    expect(readFileSync("nix/module.nix", "utf8")).toMatch(/LimitNOFILE = 65536;/);
    expect(readFileSync("deploy/compose.example.yml", "utf8")).toMatch(/nofile: \{ soft: 65536, hard: 65536 \}/);
  });
});
