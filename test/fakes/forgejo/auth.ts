import type { IncomingMessage } from "node:http";
import type { FakeCall, FakeToken, FakeUser } from "./model.js";
import type { FakeWorld } from "./world.js";

export interface AuthResult {
  call: FakeCall["auth"];
  user?: FakeUser;
  /** Set when a PAT authenticated the request: only then are token scopes checked. */
  token?: FakeToken;
  /** Basic auth with the user's real password (what PAT minting requires). */
  basicPassword?: boolean;
  /** Credentials were given but are wrong (→ 401 with this message before any route runs). */
  error?: string;
}

/**
 * Forgejo's token sources (contracts/forgejo-api.md §1): `Authorization: token|bearer <T>` (scheme
 * case-insensitive, exactly two fields), Basic (password, or a PAT as password, or the PAT as user
 * with an empty/x-oauth-basic password), and ?token= / ?access_token=.
 */
export function authenticate(world: FakeWorld, req: IncomingMessage, query: URLSearchParams): AuthResult {
  const header = req.headers.authorization;
  if (header) {
    const fields = header.trim().split(/\s+/);
    const scheme = fields[0]?.toLowerCase();
    if (fields.length === 2 && (scheme === "token" || scheme === "bearer")) {
      return byToken(world, fields[1] ?? "", scheme);
    }
    if (fields.length === 2 && scheme === "basic") {
      const decoded = Buffer.from(fields[1] ?? "", "base64").toString("utf8");
      const i = decoded.indexOf(":");
      const name = i < 0 ? decoded : decoded.slice(0, i);
      const password = i < 0 ? "" : decoded.slice(i + 1);
      if (password === "" || password === "x-oauth-basic") return { ...byToken(world, name, "basic") };
      const user = world.user(name);
      if (!user) return { call: { present: true, scheme: "basic", user: name }, error: `user does not exist [uid: 0, name: ${name}]` };
      if (password === user.password) return { call: { present: true, scheme: "basic", user: user.login }, user, basicPassword: true };
      const pat = world.state.tokens.find((t) => t.token === password && t.user.toLowerCase() === user.login.toLowerCase());
      if (pat) return { call: { present: true, scheme: "basic", token: pat.token, user: user.login }, user, token: pat };
      return {
        call: { present: true, scheme: "basic", user: user.login },
        error: `user's password is invalid [uid: ${user.id}, name: ${user.login}]`,
      };
    }
    // Anything else is not a credential Forgejo understands: treated as absent.
    return { call: { present: true } };
  }
  const q = query.get("token") ?? query.get("access_token");
  if (q) return byToken(world, q, "query");
  return { call: { present: false } };
}

function byToken(world: FakeWorld, value: string, scheme: "token" | "bearer" | "basic" | "query"): AuthResult {
  const token = world.state.tokens.find((t) => t.token === value);
  const user = token ? world.user(token.user) : undefined;
  // An unknown token signs nobody in; the route then answers 401 "token is required".
  if (!token || !user) return { call: { present: true, scheme } };
  return { call: { present: true, scheme, token: token.token, user: user.login }, user, token };
}

export type ScopeCategory = "admin" | "organization" | "repository" | "user";

/** The scope a route needs: category from the route family, read/write from the method. */
export function requiredScope(category: ScopeCategory, method: string): string {
  const write = method === "POST" || method === "PUT" || method === "PATCH" || method === "DELETE";
  return `${write ? "write" : "read"}:${category}`;
}

export function tokenHasScope(token: FakeToken, required: string): boolean {
  if (token.scopes.includes("all")) return true;
  if (token.scopes.includes(required)) return true;
  const [level, category] = required.split(":");
  return level === "read" && token.scopes.includes(`write:${category}`);
}

const CATEGORIES = ["activitypub", "admin", "misc", "notification", "organization", "package", "issue", "repository", "user"];

export function validTokenScope(s: string): boolean {
  if (s === "all" || s === "public-only") return true;
  const [level, category] = s.split(":");
  return (level === "read" || level === "write") && CATEGORIES.includes(category ?? "");
}
