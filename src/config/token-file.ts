import { accessSync, constants, statSync } from "node:fs";

const HOW =
  "create it with `nsc login` (then point namespace.token_file at the token.json it writes, usually ~/.config/ns/token.json) " +
  "or with `forgejo-nsc provision`, or remove the key to use the nsc login of the user running the dispatcher";

/**
 * Why the Namespace token file cannot be used, or undefined when it can. Checked by --check, at
 * start and by /readyz: without it every nsc call fails with "not logged in".
 */
export function tokenFileProblem(file: string): string | undefined {
  try {
    if (statSync(file).isDirectory()) return `${file} is a directory, not a token file; ${HOW}`;
    accessSync(file, constants.R_OK);
    return undefined;
  } catch (err) {
    return `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"}): ${HOW}`;
  }
}
