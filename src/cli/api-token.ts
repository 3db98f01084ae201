import { UsageError } from "./errors.js";
import { readSecretFile } from "./secret-input.js";

/**
 * The bearer for the daemons' APIs: --token, else --token-file, else FORGEJO_NSC_TOKEN. The value
 * is only ever put in an Authorization header, never printed.
 */
export async function resolveApiToken(
  flags: { token?: string | undefined; tokenFile?: string | undefined },
  env: Record<string, string | undefined>,
  usage: string,
): Promise<string | undefined> {
  if (flags.token !== undefined && flags.tokenFile !== undefined) {
    throw new UsageError("give either --token or --token-file, not both", usage);
  }
  if (flags.token !== undefined) {
    if (flags.token.trim() === "") throw new UsageError("--token is empty", usage);
    return flags.token.trim();
  }
  if (flags.tokenFile !== undefined) return readSecretFile(flags.tokenFile, "the API token", "--token-file");
  const fromEnv = env.FORGEJO_NSC_TOKEN?.trim();
  return fromEnv ? fromEnv : undefined;
}
