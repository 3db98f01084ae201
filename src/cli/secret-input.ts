import { readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { CliError } from "./errors.js";

/** Reads a secret from a file, trimmed; empty or unreadable files are errors naming the file and the flag. */
export async function readSecretFile(path: string, what: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new CliError(`cannot read ${what} from ${path} (${code}); check the path given to ${flag}`);
  }
  const value = text.trim();
  if (value === "") throw new CliError(`${path} is empty; ${flag} must name a file holding ${what}`);
  return value;
}

/** Reads a secret piped on stdin (no prompt, no echo): the first line, trimmed. */
export async function readSecretStdin(stdin: Readable, what: string, maxBytes = 65_536): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > maxBytes) throw new CliError(`stdin holds more than ${maxBytes} bytes; pipe only ${what}`);
    chunks.push(b);
  }
  const value = (Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0] ?? "").trim();
  if (value === "") throw new CliError(`stdin was empty; pipe ${what} into the command, e.g. from a password manager`);
  return value;
}
