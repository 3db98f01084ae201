/**
 * nsc parses `-e K=V` with pflag's map rules (docs/upstream-contracts.md#nsc-flag-parsing): an
 * argument with two or more "=" is read as a CSV record (commas split it, quotes are CSV syntax, a
 * newline ends it), and an argument with exactly one "=" loses leading and trailing double quotes.
 * Values that would be changed that way go through the bootstrap script instead; nothing is
 * silently corrupted.
 */

import { EnvError, assertEnvKey } from "../runner/env-key.js";

/** EnvError is also thrown here (values nsc cannot carry); callers catch it from this module. */
export { EnvError } from "../runner/env-key.js";

/** Whether `-e K=V` (or `--label K=V`) reaches nsc as exactly K and V. */
export function isFlagSafe(value: string): boolean {
  if (value.startsWith('"') || value.endsWith('"')) return false;
  if (value.includes("=") && /[,"\r\n]/.test(value)) return false;
  return true;
}

export interface EnvSplit {
  /** Ready-to-use nsc arguments: "-e", "K=V", "-e", "K2=V2", … */
  flags: string[];
  /** Variables whose values pflag would mangle; the bootstrap script exports them. */
  viaScript: Record<string, string>;
}

/**
 * Splits an environment into `-e` flags and script exports. Keys in `flagOnly` (secrets) must not
 * end up in the script text, so an unsafe value there is an error rather than a fallback.
 */
export function splitEnv(env: Record<string, string>, opts: { flagOnly?: readonly string[] } = {}): EnvSplit {
  const flags: string[] = [];
  const viaScript: Record<string, string> = {};
  for (const key of Object.keys(env).sort()) {
    const value = env[key] as string;
    assertEnvKey(key);
    if (value.includes("\0")) throw new EnvError(`environment variable ${key} contains a NUL byte, which no process environment can carry`);
    if (isFlagSafe(value)) {
      flags.push("-e", `${key}=${value}`);
    } else if (opts.flagOnly?.includes(key)) {
      throw new EnvError(
        `the value of ${key} cannot be passed to nsc with -e (it contains "=" together with "," or a double quote, or starts or ends with a double quote), and it must not be written into the script`,
      );
    } else {
      viaScript[key] = value;
    }
  }
  return { flags, viaScript };
}
