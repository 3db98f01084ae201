import type { AuthResult, ScopeCategory } from "./auth.js";
import { requiredScope, tokenHasScope } from "./auth.js";
import type { FakeFeatures } from "./features.js";
import type { FakeRepo, FakeScope, FakeUser } from "./model.js";
import type { FakeWorld } from "./world.js";

export interface Ctx {
  world: FakeWorld;
  /** Base URL of the fake, for html_url/url fields. */
  base: string;
  method: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  auth: AuthResult;
  /** Resolved for scoped routes. */
  scope: FakeScope;
  user?: FakeUser | undefined;
  repo?: FakeRepo | undefined;
}

export interface Reply {
  status: number;
  /** Serialised with JSON.stringify; `null` is sent as the literal JSON null. */
  json?: unknown;
  headers?: Record<string, string>;
}

/** Route families: which token scope category and which role check apply (contracts §1). */
export type Family = "public" | "basic" | "admin" | "org" | "repo" | "user";
export type Role = "site_admin" | "org_owner" | "repo_owner" | "repo_admin" | "none";

export interface Route {
  method: string;
  /** Relative to /api/v1, with :params. */
  path: string;
  family: Family;
  role?: Role;
  /** Repository routes under actions/: the Actions unit must be enabled, else 404. */
  actionsUnit?: boolean;
  when?: (f: FakeFeatures) => boolean;
  handle: (ctx: Ctx) => Reply;
}

interface Compiled extends Route {
  re: RegExp;
  names: string[];
}

export function apiError(ctx: { base: string }, status: number, message: string): Reply {
  return { status, json: { message, url: `${ctx.base}/api/swagger` } };
}

const NOT_FOUND = "The target couldn't be found.";
const CATEGORY: Record<Exclude<Family, "public" | "basic">, ScopeCategory> = {
  admin: "admin",
  org: "organization",
  repo: "repository",
  user: "user",
};
const DEFAULT_ROLE: Record<Family, Role> = {
  public: "none",
  basic: "none",
  admin: "site_admin",
  org: "org_owner",
  repo: "repo_owner",
  user: "none",
};

export class Router {
  private readonly routes: Compiled[] = [];

  add(route: Route): void {
    const names: string[] = [];
    const pattern = route.path.replace(/:([a-z]+)/g, (_m, name: string) => {
      names.push(name);
      return "([^/]+)";
    });
    this.routes.push({ ...route, re: new RegExp(`^${pattern}$`), names });
  }

  dispatch(world: FakeWorld, base: string, method: string, path: string, query: URLSearchParams, body: unknown, auth: AuthResult): Reply {
    const ctxBase = { base };
    const available = this.routes.filter((r) => !r.when || r.when(world.features));
    let pathMatched = false;
    for (const r of available) {
      const m = r.re.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      const params: Record<string, string> = {};
      r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1] ?? "")));
      return this.run(r, { world, base, method, params, query, body, auth, scope: { level: "instance" }, user: auth.user });
    }
    // chi answers 405 with an empty body when the path exists for other methods.
    return pathMatched ? { status: 405 } : apiError(ctxBase, 404, NOT_FOUND);
  }

  private run(r: Compiled, ctx: Ctx): Reply {
    if (ctx.auth.error) return apiError(ctx, 401, ctx.auth.error);
    if (r.family === "public" || r.family === "basic") return r.handle(ctx);
    // tokenRequiresScopes runs first but only judges PATs; reqToken then wants a signed-in user.
    if (ctx.auth.token) {
      const need = requiredScope(CATEGORY[r.family], ctx.method);
      if (!tokenHasScope(ctx.auth.token, need)) {
        return apiError(ctx, 403, `token does not have at least one of required scope(s): [${need}]`);
      }
    }
    const user = ctx.user;
    if (!user) return apiError(ctx, 401, "token is required");
    const world = ctx.world;
    switch (r.family) {
      case "admin":
        ctx.scope = { level: "instance" };
        break;
      case "user":
        ctx.scope = { level: "user", owner: user.login };
        break;
      case "org": {
        const org = world.org(ctx.params.org ?? "");
        if (!org) return apiError(ctx, 404, NOT_FOUND);
        ctx.scope = { level: "organization", owner: org.name };
        break;
      }
      case "repo": {
        const repo = world.repo(ctx.params.owner ?? "", ctx.params.repo ?? "");
        if (!repo) return apiError(ctx, 404, NOT_FOUND);
        ctx.repo = repo;
        ctx.scope = { level: "repository", owner: repo.owner, name: repo.name };
        break;
      }
    }
    const role = r.role ?? DEFAULT_ROLE[r.family];
    if (role === "site_admin" && !user.isAdmin) return apiError(ctx, 403, "user should be the site admin");
    if (role === "org_owner" && !user.isAdmin && !world.isOrgOwner(ctx.params.org ?? "", user.login)) {
      return apiError(ctx, 403, "Must be an organization owner");
    }
    if (role === "repo_owner" && ctx.repo && !world.isRepoOwner(ctx.repo, user))
      return apiError(ctx, 403, "user should be the owner of the repo");
    if (role === "repo_admin" && ctx.repo && !world.isRepoAdmin(ctx.repo, user)) {
      return apiError(ctx, 403, "user should be an owner or a collaborator with admin write of a repository");
    }
    if (r.actionsUnit && ctx.repo && !ctx.repo.actionsEnabled) return apiError(ctx, 404, NOT_FOUND);
    return r.handle(ctx);
  }
}

export interface Page {
  page: number;
  limit: number;
}

/** page is 1-based; limit defaults to 30 and is capped at 50 ([api] MAX_RESPONSE_ITEMS). */
export function pageOf(query: URLSearchParams): Page {
  const page = Math.max(1, Number.parseInt(query.get("page") ?? "1", 10) || 1);
  const raw = Number.parseInt(query.get("limit") ?? "", 10);
  const limit = !raw || raw <= 0 ? 30 : Math.min(raw, 50);
  return { page, limit };
}

export function paged<T>(ctx: Ctx, path: string, items: T[]): { items: T[]; headers: Record<string, string> } {
  const { page, limit } = pageOf(ctx.query);
  const slice = items.slice((page - 1) * limit, page * limit);
  const last = Math.max(1, Math.ceil(items.length / limit));
  const links: string[] = [];
  const link = (p: number, rel: string) => links.push(`<${ctx.base}/api/v1${path}?limit=${limit}&page=${p}>; rel="${rel}"`);
  if (page < last) {
    link(page + 1, "next");
    link(last, "last");
  }
  if (page > 1) {
    link(1, "first");
    link(page - 1, "prev");
  }
  const headers: Record<string, string> = { "X-Total-Count": String(items.length) };
  if (links.length) headers.Link = links.join(",");
  return { items: slice, headers };
}
