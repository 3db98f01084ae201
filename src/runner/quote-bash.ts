import { createHash } from "node:crypto";

/**
 * One shell word holding exactly `value`: single quotes, with each `'` written as `'\''`. Inside
 * single quotes nothing is special to sh or bash — not `$`, backticks, `\` or newlines.
 */
export function bashQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a shell word cannot contain a NUL byte");
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function assertEnvName(name: string): void {
  if (!ENV_NAME.test(name)) {
    throw new Error(`environment variable name ${JSON.stringify(name)} is invalid: use letters, digits and underscores, not starting with a digit`);
  }
}

/** `export K='v'` lines; names are checked, values quoted. */
export function exportLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => {
    assertEnvName(k);
    return `export ${k}=${bashQuote(v)}`;
  });
}

/**
 * A here-document that writes `content` to `target` verbatim. The delimiter is derived from the
 * content's hash, so no line of the content can equal it (a hostile value containing a newline and
 * the delimiter would otherwise end the document early and run as commands).
 */
export function heredocToFile(target: string, content: string): string {
  let salt = 0;
  let delim: string;
  do {
    delim = `FNSC_EOF_${createHash("sha256").update(`${salt}:${content}`).digest("hex").slice(0, 20)}`;
    salt++;
  } while (content.split("\n").includes(delim));
  const body = content.endsWith("\n") ? content : `${content}\n`;
  return `cat > ${target} <<'${delim}'\n${body}${delim}`;
}
