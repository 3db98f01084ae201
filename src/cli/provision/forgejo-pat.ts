import { requiredTokenScope, scopeApiPrefix, scopeKey } from "../../forgejo/scope.js";
import type { Scope } from "../../forgejo/scope.js";
import type { ServerInfo } from "../../forgejo/types.js";
import { parseServerVersion } from "../../forgejo/version.js";
import { errorMessage } from "../../shared/error-message.js";
import { CliError, redact } from "../errors.js";
import { HttpFailure, callJson, messageOf } from "../http.js";

/**
 * PAT scopes for a runner scope. One write scope covers everything both daemons do there
 * (docs/upstream-contracts.md#authentication-and-token-scopes and #scope-paths-and-names):
 * registration tokens, runner register/list/delete, the job search, and the webhook API of the
 * same level (/admin/hooks, /orgs/{org}/hooks, /repos/{o}/{r}/hooks, /user/hooks), since write:X
 * implies read:X.
 */
export function patScopesFor(scope: Scope): string[] {
  return [requiredTokenScope(scope, "write")];
}

/** The role Forgejo checks besides the token scope, for error messages. */
export function roleFor(scope: Scope): string {
  switch (scope.level) {
    case "instance":
      return "a site administrator";
    case "organization":
      return `an owner of the organization ${scope.owner}`;
    case "repository":
      // Runner routes check reqOwner (owner, an owner of the owning org, or a site admin); hooks need repo admin.
      return `the owner of the repository ${scope.owner}/${scope.name} (or an owner of its organization, or a site administrator)`;
    case "user":
      return "the user itself";
  }
}

function apiBase(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, "")}/api/v1`;
}

/** GET /api/v1/version, unauthenticated: proves the URL is a Forgejo (or Gitea) before anything is created. */
export async function forgejoVersion(baseUrl: string, timeoutMs: number): Promise<ServerInfo> {
  try {
    const { body } = await callJson(`${apiBase(baseUrl)}/version`, { timeoutMs });
    const v = body && typeof body === "object" ? (body as { version?: unknown }).version : undefined;
    if (typeof v !== "string")
      throw new CliError(`${baseUrl} answered /api/v1/version without a version; is --forgejo-url the Forgejo base URL?`);
    try {
      return parseServerVersion(v);
    } catch (e) {
      throw new CliError(`${errorMessage(e)} (check --forgejo-url)`);
    }
  } catch (err) {
    if (err instanceof HttpFailure) {
      throw new CliError(
        `cannot read the Forgejo version at ${baseUrl}: ${err.message}; check --forgejo-url (the URL you open Forgejo at, without /api/v1)`,
      );
    }
    throw err;
  }
}

export interface MintRequest {
  baseUrl: string;
  user: string;
  password: string;
  otp?: string | undefined;
  name: string;
  scopes: string[];
  timeoutMs: number;
}

export interface MintedPat {
  id: number | undefined;
  name: string;
  token: string;
  scopes: string[];
}

/** POST /api/v1/users/{user}/tokens with Basic auth. Errors name the user and what to do; never the password. */
export async function mintPat(req: MintRequest): Promise<MintedPat> {
  const url = `${apiBase(req.baseUrl)}/users/${encodeURIComponent(req.user)}/tokens`;
  const headers: Record<string, string> = {
    authorization: `Basic ${Buffer.from(`${req.user}:${req.password}`).toString("base64")}`,
  };
  if (req.otp) headers["x-forgejo-otp"] = req.otp;
  let body: unknown;
  try {
    ({ body } = await callJson(url, { method: "POST", headers, body: { name: req.name, scopes: req.scopes }, timeoutMs: req.timeoutMs }));
  } catch (err) {
    if (!(err instanceof HttpFailure)) throw err;
    throw new CliError(redact(mintFailure(req, err), [req.password, req.otp]));
  }
  const b = (body ?? {}) as { id?: unknown; name?: unknown; sha1?: unknown; scopes?: unknown };
  if (typeof b.sha1 !== "string" || b.sha1 === "") {
    throw new CliError(
      `Forgejo created the token "${req.name}" for user ${req.user} but did not return its value; delete it in Settings → Applications and create one by hand (pass it with --forgejo-token-file)`,
    );
  }
  return {
    id: typeof b.id === "number" ? b.id : undefined,
    name: typeof b.name === "string" ? b.name : req.name,
    token: b.sha1,
    scopes: Array.isArray(b.scopes) ? b.scopes.filter((s): s is string => typeof s === "string") : req.scopes,
  };
}

function mintFailure(req: MintRequest, err: HttpFailure): string {
  const said = messageOf(err.body);
  const detail = said ? ` (Forgejo said: ${said})` : "";
  const byHand = `or create a token with scope ${req.scopes.join(", ")} in the web UI (Settings → Applications) and pass it with --forgejo-token-file`;
  switch (err.status) {
    case 401:
      return (
        `Forgejo at ${req.baseUrl} rejected the credentials of user "${req.user}" (401)${detail}. ` +
        `Check the password given through --forgejo-password-file, FORGEJO_PASSWORD or --forgejo-password-stdin; ` +
        `if the account uses two-factor authentication pass --forgejo-otp <code>; ${byHand}`
      );
    case 403:
      return `user "${req.user}" may not create access tokens through the API (403)${detail}; ${byHand}`;
    case 404:
      return `Forgejo at ${req.baseUrl} has no user "${req.user}" (404)${detail}; check --forgejo-user (the login name, not the display name)`;
    case 400:
    case 422:
      if (/used already|already exist/i.test(said ?? "")) {
        return `user "${req.user}" already has an access token named "${req.name}"${detail}; pass --pat-name <another name> or delete the old token in Settings → Applications`;
      }
      return `Forgejo refused to create the token "${req.name}" for user "${req.user}" (${err.status})${detail}; ${byHand}`;
    default:
      if (err.kind === "unreachable" || err.kind === "timeout")
        return `cannot reach Forgejo to create a token: ${err.message}; check --forgejo-url`;
      return `creating an access token for user "${req.user}" failed: ${err.message}; ${byHand}`;
  }
}

/** The job search of a scope (Forgejo >= 11, Gitea >= 1.24): the route both daemons poll, with the runner routes' role check. */
function jobsPath(scope: Scope, server: ServerInfo): string {
  if (server.kind === "gitea") return `${scopeApiPrefix(scope)}/actions/jobs`;
  return scope.level === "instance" ? "/admin/runners/jobs" : `${scopeApiPrefix(scope)}/actions/runners/jobs`;
}

/**
 * Probes, with the PAT, the scope's webhook list, job search and webhook creation: the route
 * families, token scope categories and role checks the daemons need. Nothing is changed: the
 * creation is sent with an empty body, which Forgejo refuses with 422 only after the write scope
 * and the role were accepted. Returns a problem text, or undefined when all passed.
 */
export async function checkPatForScope(
  baseUrl: string,
  token: string,
  scope: Scope,
  server: ServerInfo,
  timeoutMs: number,
): Promise<string | undefined> {
  const where = scopeKey(scope);
  const hooks = `${scopeApiPrefix(scope)}/hooks`;
  const notFound = `Forgejo found nothing at ${where}: check the --scope owner and name`;
  const checks: { method: "GET" | "POST"; path: string; what: string; on404: string }[] = [
    { method: "GET", path: hooks, what: "the webhook list", on404: notFound },
  ];
  if (server.jobsApi) {
    checks.push({
      method: "GET",
      path: jobsPath(scope, server),
      what: "the Actions job search",
      on404:
        scope.level === "repository"
          ? `the repository ${scope.owner}/${scope.name} has Actions disabled (enable it in its settings), or Forgejo is older than 11 (no jobs API)`
          : `the server has no Actions job search at ${where}`,
    });
  }
  checks.push({ method: "POST", path: hooks, what: "webhook creation (write access)", on404: notFound });
  for (const c of checks) {
    try {
      await callJson(`${apiBase(baseUrl)}${c.path}`, {
        method: c.method,
        headers: { authorization: `token ${token}` },
        ...(c.method === "POST" ? { body: {} } : {}),
        timeoutMs,
      });
    } catch (err) {
      if (!(err instanceof HttpFailure)) throw err;
      if (c.method === "POST" && err.status === 422) continue;
      const said = messageOf(err.body);
      const detail = said ? ` (Forgejo said: ${redact(said, [token])})` : "";
      switch (err.status) {
        case 401:
          return `Forgejo rejected the token (401)${detail}: it is wrong, expired or revoked`;
        case 403:
          return `the token cannot use ${c.what} of ${where} (403)${detail}: it needs the scope ${patScopesFor(scope).join(", ")} and its user must be ${roleFor(scope)}`;
        case 404:
          return `${c.on404}${detail}`;
        default:
          return `checking the token against ${c.what} of ${where} failed: ${redact(err.message, [token])}`;
      }
    }
  }
  return undefined;
}
