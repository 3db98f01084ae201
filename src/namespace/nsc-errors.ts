/**
 * Reading nsc's error reports (docs/upstream-contracts.md#nsc-error-reports): one `Failed: …`
 * report on stderr, word-wrapped at 100 columns and possibly boxed or preceded by an action trace,
 * then a footer. We match short substrings after collapsing whitespace, never whole lines.
 */

export type NscErrorKind = "capacity" | "gone" | "auth" | "invalid" | "transient" | "timeout";

export class NscError extends Error {
  constructor(
    message: string,
    readonly kind: NscErrorKind,
    /** The nsc command ("run", "describe", …). */
    readonly command: string,
    /** The instance the error is about, when nsc named it (`cluster id: <id>`) or a cidfile held it. */
    readonly instanceId?: string,
    /** nsc's own `Failed:` text, whitespace collapsed and secrets removed. */
    readonly detail?: string,
    readonly exitCode?: number | null,
  ) {
    super(message);
    this.name = "NscError";
  }
}

export function collapse(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

const FOOTER_START = "See https://namespace.so/docs";

/** The text of the `Failed:` report, without box bars and footer, whitespace collapsed. */
export function failedText(stderr: string): string | undefined {
  const at = stderr.lastIndexOf("Failed:");
  if (at < 0) return undefined;
  let body = stderr.slice(at + "Failed:".length);
  const footer = body.indexOf(FOOTER_START);
  if (footer >= 0) body = body.slice(0, footer);
  body = body.replace(/^={10,}$/gm, "");
  return collapse(body);
}

/** An instance ID named in error text (`cluster id: <id>`). */
export function instanceIdIn(text: string): string | undefined {
  return /cluster id: ([a-z0-9]+)/i.exec(collapse(text))?.[1];
}

/** Whether the text says an instance is gone (`does not exist`, `no longer running`, or the raw server wordings). */
export function saysGone(text: string): boolean {
  const t = collapse(text).toLowerCase();
  return t.includes("does not exist") || t.includes("no longer running") || t.includes("not found") || /\bdestroyed\b/.test(t);
}

const AUTH = [
  "not logged in",
  "login token expired",
  "session expired",
  "token expired",
  "no credentials found",
  "please run nsc login",
  "that's not allowed",
  "missing the permission",
  "unauthenticated",
];
const CAPACITY = ["ran out of capacity", "resourceexhausted", "resource_exhausted", "resource exhausted"];
const INVALID = [
  "unknown flag",
  "unknown shorthand flag",
  "unknown command",
  "flag needs an argument",
  "must be formatted as key=value",
  "invalid argument",
  "is required",
  "failed to parse",
  "invalid selector",
  "(invalidargument)",
  "can only be set when",
  "accepts ",
  "invalid duration",
  "parse error on line",
  "only support linux",
];
const TIMEOUT = ["context deadline exceeded", "never became ready", "deadline exceeded"];

/** Classifies an error report by short substrings of its collapsed text. */
export function classify(stderr: string): NscErrorKind {
  const t = collapse(stderr).toLowerCase();
  if (AUTH.some((s) => t.includes(s))) return "auth";
  if (CAPACITY.some((s) => t.includes(s))) return "capacity";
  if (INVALID.some((s) => t.includes(s))) return "invalid";
  if (TIMEOUT.some((s) => t.includes(s))) return "timeout";
  if (t.includes("does not exist") || t.includes("no longer running")) return "gone";
  return "transient";
}

/** What an operator should do about each kind of failure. */
export function hintFor(kind: NscErrorKind, text: string): string {
  switch (kind) {
    case "auth":
      return 'nsc is not authenticated: run `nsc login` or set namespace.token_file to a token file ({"bearer_token": …}, e.g. from `nsc token create`)';
    case "capacity":
      return "Namespace ran out of capacity: retry later or pick a smaller machine_type";
    case "invalid":
      return "nsc rejected the command: check namespace.image, machine_type, the linux_cache_* settings and labels, and that nsc is v0.0.433 or newer";
    case "timeout":
      return /never became ready|deadline exceeded/i.test(text)
        ? "the instance did not become ready in time: raise namespace.wait_timeout for large images"
        : "nsc did not finish in time; it is retried";
    case "gone":
      return "the instance no longer exists";
    case "transient":
      return /cluster is destroyed/i.test(text)
        ? "the container exited before the instance was ready: check that namespace.image has /bin/sh and forgejo-runner and no ENTRYPOINT"
        : "this is usually temporary; it is retried";
  }
}

/** Replaces every secret (longer than 3 characters) in `text` with [redacted]. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].filter((x) => x.length > 3).sort((a, b) => b.length - a.length)) out = out.split(s).join("[redacted]");
  return out;
}
