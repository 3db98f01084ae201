import { createHash } from "node:crypto";
import { assertEnvKey } from "./env-key.js";
import { shQuote } from "./shell-quote.js";

/** `export K='v'` lines; names are checked, values single-quoted (nothing in them expands). */
export function exportLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => {
    assertEnvKey(k);
    return `export ${k}=${shQuote(v)}`;
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
