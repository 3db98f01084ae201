import { parseArgs } from "node:util";
import type { ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.js";

export type FlagOptions = NonNullable<ParseArgsConfig["options"]>;

/**
 * parseArgs in strict mode, with its errors turned into UsageError naming the bad flag. The
 * messages never echo a flag's value: a misplaced value may be a secret.
 */
export function parseFlags<const O extends FlagOptions>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw toUsageError(err, usage);
  }
}

function toUsageError(err: unknown, usage: string): UsageError {
  const e = err as { code?: string; message?: string };
  const flag = /'(-{1,2}[^'\s=<]+)/.exec(e.message ?? "")?.[1];
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new UsageError(`unknown flag ${flag ?? "(unreadable)"}`, usage);
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (/does not take an argument/.test(e.message ?? "")) return new UsageError(`flag ${flag} takes no value`, usage);
      return new UsageError(`flag ${flag} needs a value (write ${flag}=<value> if the value starts with "-")`, usage);
    default:
      return new UsageError(`cannot parse the command line (${e.code ?? "error"})`, usage);
  }
}

/** Rejects positional arguments a command does not take, without echoing them (they may be secrets). */
export function noPositionals(positionals: readonly string[], usage: string, max = 0): void {
  if (positionals.length > max) {
    throw new UsageError(`unexpected argument #${max + 1}${max === 0 ? " (this command takes only flags)" : ""}`, usage);
  }
}
