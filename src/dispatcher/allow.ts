import type { Scope } from "../forgejo/scope.js";
import { scopeKey } from "../forgejo/scope.js";

/** Shell-style glob with `*` only, anchored, case-sensitive. */
export function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(value);
}

/** Labels outside the allow list (empty list allows all). Compares label names, not executor suffixes. */
export function disallowedLabels(labels: readonly string[], allow: readonly string[]): string[] {
  if (allow.length === 0) return [];
  return labels.filter((l) => !allow.some((p) => globMatch(p, l) || globMatch(p, l.split(":")[0] as string)));
}

/**
 * A scope pattern ("instance", "org:acme", "repo:acme/*") against a scope key, both in lower case:
 * Forgejo names are case-insensitive, so "repo:Acme/*" and "repo:acme/*" cover the same scopes.
 */
export function scopeMatch(pattern: string, key: string): boolean {
  return globMatch(pattern.toLowerCase(), key.toLowerCase());
}

/** Scope patterns: "instance", "user", "org:acme", "repo:acme/app", "repo:acme/*", "org:*". */
export function scopeAllowed(scope: Scope, allow: readonly string[]): boolean {
  if (allow.length === 0) return true;
  const key = scopeKey(scope);
  return allow.some((p) => scopeMatch(p, key));
}
