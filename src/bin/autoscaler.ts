#!/usr/bin/env node
import { parseArgs } from "node:util";
import { autoscalerConfigSchema, configWarnings, targetName } from "../config/autoscaler-schema.js";
import { splitListen } from "../config/common.js";
import { formatDuration } from "../config/duration.js";
import { ConfigError, loadConfigFile } from "../config/load.js";
import { scopeKey } from "../forgejo/scope.js";
import { createAutoscaler } from "../autoscaler/app.js";
import { createLogger } from "../http/logger.js";

const USAGE = "usage: forgejo-nsc-autoscaler --config <file> [--check]";

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
  const file = args.values.config ?? process.env.FORGEJO_NSC_AUTOSCALER_CONFIG;
  if (!file) {
    process.stderr.write(`no config file given\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfigFile(autoscalerConfigSchema, file);
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : `invalid configuration in ${file}: ${(err as Error).message}`}\n`);
    return 1;
  }
  if (args.values.check) {
    for (const w of configWarnings(config)) process.stdout.write(`warning: ${w}\n`);
    process.stdout.write(`${file}: configuration is valid\n`);
    for (const inst of config.instances) {
      const targets = inst.targets.map((t) => targetName(t)).join(", ");
      process.stdout.write(
        `  ${inst.name}: ${inst.forgejo.base_url} (${scopeKey(inst.scope)}), poll every ${formatDuration(inst.poll_interval)}, targets: ${targets}, webhook at /webhook/${inst.name}\n`,
      );
    }
    return 0;
  }

  const logger = createLogger(config.log.level, "forgejo-nsc-autoscaler");
  const autoscaler = await createAutoscaler({ config, logger });
  const { host, port } = splitListen(config.listen);
  await autoscaler.app.listen({ host, port });
  autoscaler.start();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: finishing the reconcile in progress; runners already requested are the dispatcher's");
    await autoscaler.stop();
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
    process.stderr.write(`forgejo-nsc-autoscaler failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
