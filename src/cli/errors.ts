/** A failure the operator can act on: the message says what went wrong and what to do. Exit code 1. */
export class CliError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

/** The command line itself is wrong (unknown flag, missing value). Exit code 2, with usage text. */
export class UsageError extends Error {
  readonly exitCode: number = 2;
  constructor(
    message: string,
    /** The usage text of the command that was being parsed. */
    readonly usage: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Replaces every occurrence of the given secrets in a text. Used on anything that echoes a remote
 * answer (Forgejo's `message`, nsc's stderr), so a secret can never reach the terminal through it.
 */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join("[redacted]");
  }
  return out;
}
