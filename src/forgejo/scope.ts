import { z } from "zod";

/**
 * Owner and repository names as Forgejo accepts them (its forms: `Username;MaxSize(40)` for users
 * and organizations, `AlphaDashDot;MaxSize(100)` for repositories; "." and ".." are reserved).
 * Every API path is built from names that pass this, so a name can never be a path segment that
 * the URL resolves ("..") or a separator ("/", "?", "#").
 */
export const OWNER_NAME_MAX = 40;
export const REPO_NAME_MAX = 100;
const NAME_CHARS = /^[A-Za-z0-9_.-]+$/;
const ALLOWED = 'letters, digits, "-", "_" and "." (not "." or "..")';

/** Why `value` is not a valid owner or repository name, or undefined when it is. */
export function scopeNameProblem(
  value: string,
  what: "owner" | "repository",
  max = what === "owner" ? OWNER_NAME_MAX : REPO_NAME_MAX,
): string | undefined {
  let got: string | undefined;
  if (value.length === 0) got = "it is empty";
  else if (value.length > max) got = `it has ${value.length} characters`;
  else if (value === "." || value === "..") got = `it is ${JSON.stringify(value)}`;
  else if (!NAME_CHARS.test(value)) got = `it contains ${JSON.stringify(/[^A-Za-z0-9_.-]/.exec(value)?.[0])}`;
  return got && `not a valid Forgejo ${what} name (${got}): use 1 to ${max} ${ALLOWED}`;
}

const scopeName = (what: "owner" | "repository") =>
  z.string().superRefine((v, ctx) => {
    const problem = scopeNameProblem(v, what);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

/** Where a runner is registered: the whole instance, an organization, a repository or a user. */
export const scopeSchema = z
  .object({
    level: z.enum(["instance", "organization", "repository", "user"]),
    owner: scopeName("owner").optional(),
    name: scopeName("repository").optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.level === "organization" || s.level === "repository") && !s.owner) {
      ctx.addIssue({ code: "custom", path: ["owner"], message: `required for level "${s.level}"` });
    }
    if (s.level === "repository" && !s.name) {
      ctx.addIssue({ code: "custom", path: ["name"], message: `required for level "repository"` });
    }
    if ((s.level === "instance" || s.level === "user") && (s.owner || s.name)) {
      ctx.addIssue({ code: "custom", path: ["level"], message: `level "${s.level}" takes no owner or name` });
    }
    if (s.level === "organization" && s.name) {
      ctx.addIssue({ code: "custom", path: ["name"], message: `level "organization" takes no name` });
    }
  });

export type Scope = z.infer<typeof scopeSchema>;

/**
 * A stable, human-readable key: "instance", "org:acme", "repo:acme/app", "user". Lower case:
 * Forgejo owner and repository names are case-insensitive, so "Acme/App" and "acme/app" are one
 * scope for caps, allow lists, idempotency and the registration sweep.
 */
export function scopeKey(s: Scope): string {
  switch (s.level) {
    case "instance":
      return "instance";
    case "organization":
      return `org:${s.owner}`.toLowerCase();
    case "repository":
      return `repo:${s.owner}/${s.name}`.toLowerCase();
    case "user":
      return "user";
  }
}

/** The same scope with owner and name in lower case (how Forgejo compares them). */
export function canonicalScope(s: Scope): Scope {
  const out: Scope = { level: s.level };
  if (s.owner !== undefined) out.owner = s.owner.toLowerCase();
  if (s.name !== undefined) out.name = s.name.toLowerCase();
  return out;
}

/**
 * The API path prefix of a scope's Actions routes (without /api/v1), per
 * docs/upstream-contracts.md#scope-paths-and-names: admin/actions, orgs/{org}/actions,
 * repos/{owner}/{repo}/actions, user/actions.
 */
export function scopeApiPrefix(s: Scope): string {
  switch (s.level) {
    case "instance":
      return "/admin";
    case "organization":
      return `/orgs/${segment(s.owner, "owner")}`;
    case "repository":
      return `/repos/${segment(s.owner, "owner")}/${segment(s.name, "repository")}`;
    case "user":
      return "/user";
  }
}

/** Thrown when a scope that never passed scopeSchema (an old record, a caller's bug) reaches a path. */
export class InvalidScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidScopeError";
  }
}

/** A validated, encoded path segment; a name that would leave the scope never becomes a path. */
function segment(value: string | undefined, what: "owner" | "repository"): string {
  const problem = scopeNameProblem(value ?? "", what);
  if (problem) throw new InvalidScopeError(`refusing to call Forgejo for this scope: the ${what} is ${problem}`);
  return encodeURIComponent(value as string);
}

/** The PAT scope a write call at this level needs, for error messages. */
export function requiredTokenScope(s: Scope, access: "read" | "write"): string {
  const cat = { instance: "admin", organization: "organization", repository: "repository", user: "user" }[s.level];
  return `${access}:${cat}`;
}
