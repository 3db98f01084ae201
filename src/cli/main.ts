import { CliError, UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { MIGRATE_STORE_USAGE, migrateStoreCommand } from "./migrate-store.js";
import { PROVISION_USAGE, provisionCommand } from "./provision/command.js";
import { STATUS_USAGE, statusCommand } from "./status/command.js";
import { packageVersion } from "./version.js";

export const MAIN_USAGE = `forgejo-nsc: operator CLI for the forgejo-nsc dispatcher and autoscaler

Usage:
  forgejo-nsc status [flags]              what is waiting, launching and running, and why
  forgejo-nsc status runner <name>        one runner's transition history
  forgejo-nsc provision --out <dir> ...   secrets, tokens and configs for both daemons
  forgejo-nsc migrate-store --from sqlite:<file> --to <postgres url>
                                          copy the dispatcher's records from SQLite to PostgreSQL
  forgejo-nsc help [command]              help for a command
  forgejo-nsc --version                   print the version

Run "forgejo-nsc help <command>" for a command's flags. Documentation: docs/cli.md.
`;

const COMMANDS: Record<string, { usage: string; run: (argv: string[], io: CliIo) => Promise<number> }> = {
  status: { usage: STATUS_USAGE, run: statusCommand },
  provision: { usage: PROVISION_USAGE, run: provisionCommand },
  "migrate-store": { usage: MIGRATE_STORE_USAGE, run: migrateStoreCommand },
};

/** Runs one CLI invocation; returns the exit code (0 ok, 1 failure, 2 usage). Never throws. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined || first === "help" || first === "-h" || first === "--help") {
      const topic = first === "help" ? rest[0] : undefined;
      if (topic === undefined) {
        if (first === undefined) throw new UsageError("name a command", MAIN_USAGE);
        io.out(MAIN_USAGE);
        return 0;
      }
      const cmd = COMMANDS[topic];
      if (!cmd) throw new UsageError(`unknown command "${topic}"`, MAIN_USAGE);
      io.out(cmd.usage);
      return 0;
    }
    if (first === "--version" || first === "-v" || first === "version") {
      io.out(`forgejo-nsc ${packageVersion()}\n`);
      return 0;
    }
    const cmd = COMMANDS[first];
    if (!cmd) {
      throw new UsageError(
        first.startsWith("-") ? `unknown flag ${first.split("=")[0]} (flags go after the command)` : `unknown command "${first}"`,
        MAIN_USAGE,
      );
    }
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`forgejo-nsc: ${err.message}\n\n${err.usage}`);
      return err.exitCode;
    }
    if (err instanceof CliError) {
      io.err(`forgejo-nsc: ${err.message}\n`);
      return err.exitCode;
    }
    // A bug, not an operator mistake: keep the stack for the report.
    io.err(`forgejo-nsc: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
