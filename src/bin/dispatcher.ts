#!/usr/bin/env node
import { parseArgs } from "node:util";
import { dispatcherConfigSchema } from "../config/dispatcher-schema.js";
import { splitListen } from "../config/common.js";
import { ConfigError, loadConfigFile } from "../config/load.js";
import { assertSafeListen, createDispatcher } from "../dispatcher/app.js";
import { buildDispatcherDeps } from "../dispatcher/wiring.js";
import { createLogger } from "../http/logger.js";

const USAGE = "usage: forgejo-nsc-dispatcher --config <file> [--check]";

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: "string", short: "c" }, check: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = args.values.config ?? process.env.FORGEJO_NSC_CONFIG;
  if (!file) {
    process.stderr.write(`no config file given\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfigFile(dispatcherConfigSchema, file);
    assertSafeListen(config.listen, config.auth.tokens, config.auth.allow_unauthenticated);
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : `invalid configuration in ${file}: ${(err as Error).message}`}\n`);
    return 1;
  }
  if (args.values.check) {
    process.stdout.write(`${file}: configuration is valid\n`);
    return 0;
  }

  const logger = createLogger(config.log.level, "forgejo-nsc-dispatcher");
  const deps = await buildDispatcherDeps(config, logger);
  const dispatcher = await createDispatcher(deps);
  const { host, port } = splitListen(config.listen);
  await dispatcher.start();
  await dispatcher.app.listen({ host, port });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: no new dispatches; running runners stay alive until their job ends or their TTL");
    await dispatcher.stop();
    await deps.store.close();
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`forgejo-nsc-dispatcher failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
