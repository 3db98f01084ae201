import { scopeSchema } from "../../forgejo/scope.js";
import type { Scope } from "../../forgejo/scope.js";

/**
 * Parses --scope: "instance", "user", "org:<org>" (or "organization:<org>"), "repo:<owner>/<name>"
 * (or "repository:…") — the same spelling as scope keys in the status output and caps.
 * Returns an error text instead of throwing so the caller can attach usage.
 */
export function parseScopeArg(text: string): Scope | string {
  const t = text.trim();
  let candidate: unknown;
  const m = /^(org|organization|repo|repository):(.*)$/.exec(t);
  if (t === "instance" || t === "user") {
    candidate = { level: t };
  } else if (m && (m[1] === "org" || m[1] === "organization")) {
    candidate = { level: "organization", owner: m[2] };
  } else if (m) {
    const [owner, name, ...extra] = (m[2] ?? "").split("/");
    if (extra.length > 0) return `--scope ${t}: write a repository as repo:<owner>/<name>`;
    candidate = { level: "repository", owner, name };
  } else {
    return `--scope "${t}" is not a scope: use instance, user, org:<org> or repo:<owner>/<name>`;
  }
  const r = scopeSchema.safeParse(candidate);
  if (!r.success) return `--scope ${t}: ${r.error.issues.map((i) => `${i.path.join(".") || "scope"} ${i.message}`).join("; ")}`;
  return r.data;
}
