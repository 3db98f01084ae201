import { parseArgs } from "node:util";
import type { z } from "zod";
import { ConfigError, loadConfigFile } from "../config/load.js";
import { errorMessage } from "../shared/error-message.js";
import { STATE_RETRIES } from "../store/errors.js";

export interface DaemonSpec<S extends z.ZodType> {
  /** Program name, for usage and error lines. */
  name: string;
  schema: S;
  /** Environment variable that may name the config file instead of --config. */
  configEnv: string;
  /** Checks beyond the schema (e.g. listen safety); throws with a message that says what to do. */
  validate?: (config: z.output<S>) => void;
  /** Printed as "warning: …" before the --check verdict. */
  warnings?: (config: z.output<S>) => string[];
  /** Printed after "configuration is valid" for --check. */
  describe?: (config: z.output<S>, file: string) => string[];
  /** Starts the daemon; resolves once it listens. Returns the function that stops it. */
  run: (config: z.output<S>) => Promise<(signal: string) => Promise<void>>;
}

/** The shared command line of both daemons: --config, --check, --help, signals, exit codes. */
export async function daemonMain<S extends z.ZodType>(spec: DaemonSpec<S>): Promise<number> {
  const usage = `usage: ${spec.name} --config <file> [--check]`;
  let args;
  try {
    args = parseArgs({
      options: { config: { type: "string", short: "c" }, check: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const file = args.values.config ?? process.env[spec.configEnv];
  if (!file) {
    process.stderr.write(`no config file given (--config or ${spec.configEnv})\n${usage}\n`);
    return 2;
  }
  let config: z.output<S>;
  try {
    config = loadConfigFile(spec.schema, file);
    spec.validate?.(config);
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : `invalid configuration in ${file}: ${(err as Error).message}`}\n`);
    return 1;
  }
  if (args.values.check) {
    for (const w of spec.warnings?.(config) ?? []) process.stdout.write(`warning: ${w}\n`);
    process.stdout.write(`${file}: configuration is valid\n`);
    for (const line of spec.describe?.(config, file) ?? []) process.stdout.write(`${line}\n`);
    return 0;
  }
  const stop = await spec.run(config);
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${spec.name}: error while stopping: ${errorMessage(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  return -1;
}

/** Runs a daemon's main and turns its result into the process exit code. */
export function runDaemon(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => {
      if (code >= 0) process.exit(code);
    },
    (err: unknown) => {
      // A running dispatcher retries an unreachable database by itself; one that cannot start exits.
      const message = errorMessage(err).replace(
        `; ${STATE_RETRIES}`,
        "; exiting (systemd's Restart=on-failure or a container restart policy starts it again)",
      );
      process.stderr.write(`${name} failed to start: ${message}\n`);
      process.exit(1);
    },
  );
}
