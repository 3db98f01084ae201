/**
 * POSIX sh quoting. Single quotes keep every byte literal except the single quote itself, which
 * is written as '\'' (close, escaped quote, reopen). Nothing inside is expanded: $(), backticks,
 * $VAR, backslashes and newlines stay inert.
 */
export function shQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a shell word cannot contain a NUL byte");
  if (/^[A-Za-z0-9_@%+:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Quotes each word and joins them with spaces: one command line. */
export function shJoin(words: readonly string[]): string {
  return words.map(shQuote).join(" ");
}
