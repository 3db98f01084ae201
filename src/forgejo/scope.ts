import { z } from "zod";

/** Where a runner is registered: the whole instance, an organization, a repository or a user. */
export const scopeSchema = z
  .object({
    level: z.enum(["instance", "organization", "repository", "user"]),
    owner: z.string().min(1).optional(),
    name: z.string().min(1).optional(),
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

/** A stable, human-readable key: "instance", "org:acme", "repo:acme/app", "user". */
export function scopeKey(s: Scope): string {
  switch (s.level) {
    case "instance":
      return "instance";
    case "organization":
      return `org:${s.owner}`;
    case "repository":
      return `repo:${s.owner}/${s.name}`;
    case "user":
      return "user";
  }
}

/**
 * The API path prefix of a scope's Actions routes (without /api/v1), per contracts/forgejo-api.md:
 * admin/actions, orgs/{org}/actions, repos/{owner}/{repo}/actions, user/actions.
 */
export function scopeApiPrefix(s: Scope): string {
  switch (s.level) {
    case "instance":
      return "/admin";
    case "organization":
      return `/orgs/${encodeURIComponent(s.owner ?? "")}`;
    case "repository":
      return `/repos/${encodeURIComponent(s.owner ?? "")}/${encodeURIComponent(s.name ?? "")}`;
    case "user":
      return "/user";
  }
}

/** The PAT scope a write call at this level needs, for error messages. */
export function requiredTokenScope(s: Scope, access: "read" | "write"): string {
  const cat = { instance: "admin", organization: "organization", repository: "repository", user: "user" }[s.level];
  return `${access}:${cat}`;
}
