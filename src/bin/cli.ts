#!/usr/bin/env node
import { processIo } from "../cli/io.js";
import { runCli } from "../cli/main.js";

const controller = new AbortController();
let interrupted = 0;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    // First signal ends --watch cleanly; a second one is the operator insisting.
    if (++interrupted > 1) process.exit(130);
    controller.abort();
  });
}

const code = await runCli(process.argv.slice(2), processIo(controller.signal));
process.exitCode = code;
