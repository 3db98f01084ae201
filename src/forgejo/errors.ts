import { requiredTokenScope, scopeKey } from "./scope.js";
import type { Scope } from "./scope.js";

/** What the client was doing; also the wording of error messages. */
export type ForgejoOperation =
  | "server_version"
  | "current_user"
  | "registration_token"
  | "register_runner"
  | "get_runner"
  | "delete_runner"
  | "list_runners"
  | "search_jobs"
  | "list_hooks"
  | "create_hook"
  | "edit_hook"
  | "delete_hook";

const OPERATION_WORDS: Record<ForgejoOperation, string> = {
  server_version: "read the server version",
  current_user: "read the token's user",
  registration_token: "get the runner registration token",
  register_runner: "register a runner",
  get_runner: "look up a runner",
  delete_runner: "delete a runner",
  list_runners: "list runners",
  search_jobs: "list waiting jobs",
  list_hooks: "list webhooks",
  create_hook: "create a webhook",
  edit_hook: "update a webhook",
  delete_hook: "delete a webhook",
};

/**
 * http: Forgejo answered with an error status. timeout: no answer in time. network: no connection.
 * unsupported: the server version lacks the feature (nothing was sent). bad_response: the answer
 * was not the JSON the contract promises.
 */
export type ForgejoErrorKind = "http" | "timeout" | "network" | "unsupported" | "bad_response";

export interface ForgejoErrorInit {
  kind: ForgejoErrorKind;
  operation: ForgejoOperation;
  scope?: Scope | undefined;
  /** HTTP status; 0 when there was no response. */
  status?: number;
  method?: string;
  /** API path without the base URL (which may carry credentials) and without secrets. */
  path?: string;
  /** Forgejo's `message` field, already scrubbed of secrets. */
  serverMessage?: string | undefined;
  /** What went wrong and what to do, when the caller knows better than the defaults. */
  hint?: string | undefined;
  timeoutMs?: number;
  /** Scrubbed error from the HTTP stack (never the raw one: it may hold request options). */
  cause?: Error | undefined;
}

/**
 * Every failed Forgejo call. The message names the operation, the scope, the status, Forgejo's own
 * message and what to do; the PAT never appears in it (the client scrubs server text as well).
 */
export class ForgejoApiError extends Error {
  readonly kind: ForgejoErrorKind;
  readonly operation: ForgejoOperation;
  readonly scope: Scope | undefined;
  readonly status: number;
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly serverMessage: string | undefined;

  constructor(init: ForgejoErrorInit) {
    super(composeMessage(init), init.cause ? { cause: init.cause } : undefined);
    this.name = "ForgejoApiError";
    this.kind = init.kind;
    this.operation = init.operation;
    this.scope = init.scope;
    this.status = init.status ?? 0;
    this.method = init.method;
    this.path = init.path;
    this.serverMessage = init.serverMessage;
  }

  /** Worth retrying later: 5xx, 429, timeouts and connection failures. Retrying is the caller's job. */
  get isTransient(): boolean {
    if (this.kind === "timeout" || this.kind === "network") return true;
    return this.kind === "http" && (this.status >= 500 || this.status === 429);
  }
}

export function isTransientForgejoError(err: unknown): boolean {
  return err instanceof ForgejoApiError && err.isTransient;
}

/** "500ms", "30s", "1m30s": the form the config uses. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  return rest ? `${m}m${rest}s` : `${m}m`;
}

function composeMessage(init: ForgejoErrorInit): string {
  const where = init.scope ? ` for ${scopeKey(init.scope)}` : "";
  const call = init.method && init.path ? ` (${init.method} ${init.path})` : "";
  const what = `could not ${OPERATION_WORDS[init.operation]}${where}${call}`;
  switch (init.kind) {
    case "timeout":
      return `${what}: Forgejo did not answer within ${formatDuration(init.timeoutMs ?? 0)}; ${init.hint ?? "check that forgejo.base_url is reachable from here, or raise forgejo.timeout"}`;
    case "network":
      return `${what}: ${init.hint ?? "could not connect to Forgejo; check forgejo.base_url and that the server is up"}`;
    case "unsupported":
    case "bad_response":
      return `${what}: ${init.hint ?? "unexpected answer"}`;
    case "http": {
      const status = init.status ?? 0;
      const server = init.serverMessage ? ` ${JSON.stringify(init.serverMessage)}` : "";
      return `${what}: HTTP ${status}${server}; ${init.hint ?? defaultHint(init, status)}`;
    }
  }
}

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function defaultHint(init: ForgejoErrorInit, status: number): string {
  const scope = init.scope;
  const access = init.method && WRITE_METHODS.has(init.method) ? "write" : "read";
  if (status === 401) return "the token was rejected: check forgejo.token (it may be mistyped, expired or revoked)";
  if (status === 403) {
    if (!scope) return `the token lacks the ${access}:user scope; create a token with it`;
    const pat = requiredTokenScope(scope, access);
    return `the token lacks the ${pat} scope (or its user is not ${roleFor(scope, init.operation)}); create a token with ${pat} for such a user`;
  }
  if (status === 404) {
    if (scope?.level === "repository") {
      return init.operation.endsWith("_hook") || init.operation === "list_hooks"
        ? `repository ${scope.owner}/${scope.name} does not exist or the token's user cannot see it`
        : `the repository ${scope.owner}/${scope.name} does not exist or has Actions disabled (enable Actions in its settings)`;
    }
    if (scope?.level === "organization") return `organization ${scope.owner} does not exist or the token's user cannot see it`;
    return "Forgejo has no such resource; check forgejo.base_url and the server version";
  }
  if (status === 422) return "Forgejo refused the request body; this is a bug in forgejo-nsc or an unsupported server version";
  if (status === 429) return "Forgejo is rate limiting; the call is retried later";
  if (status >= 500) return "Forgejo failed internally; the call is retried later, and the Forgejo log says why";
  return "unexpected status from Forgejo";
}

function roleFor(scope: Scope, op: ForgejoOperation): string {
  switch (scope.level) {
    case "instance":
      return "a site administrator";
    case "organization":
      return `an owner of organization ${scope.owner}`;
    case "repository":
      return op.endsWith("_hook") || op === "list_hooks"
        ? `an administrator of repository ${scope.owner}/${scope.name}`
        : `the owner of repository ${scope.owner}/${scope.name} or a site administrator`;
    case "user":
      return "the user the runners belong to";
  }
}
