import { request } from "undici";
import type { Logger } from "pino";
import type { z } from "zod";
import type { Metrics } from "../http/metrics.js";
import { errorMessage } from "../shared/error-message.js";
import { ForgejoApiError } from "./errors.js";
import type { ForgejoErrorInit, ForgejoOperation } from "./errors.js";
import { InvalidScopeError, scopeApiPrefix } from "./scope.js";
import type { Scope } from "./scope.js";
import type { ActionRunJob, ActionRunner, ForgejoApi, Hook, HookSpec, RegisteredRunner, ServerInfo } from "./types.js";
import { describeServer, parseServerVersion, VersionParseError } from "./version.js";
import {
  forgejoJobsBody,
  forgejoRunnerBody,
  giteaJobsBody,
  giteaRunnerBody,
  giteaRunnersBody,
  hookBody,
  registeredRunnerBody,
  registrationTokenBody,
  userBody,
  versionBody,
} from "./wire.js";
import type { ForgejoRunnerBody, GiteaJobBody, GiteaRunnerBody, HookBody } from "./wire.js";

export interface ForgejoClientOptions {
  /** Root URL of Forgejo/Gitea, e.g. https://forgejo.example.com (a sub-path is kept). */
  baseUrl: string;
  /** Personal access token; sent as `Authorization: token …` and nowhere else. */
  token: string;
  /** Per call, from sending the request to reading the whole body. */
  timeoutMs: number;
  /** Sent with every call (e.g. for an access proxy); cannot replace Authorization. */
  extraHeaders?: Record<string, string>;
  logger: Logger;
  metrics?: Metrics | undefined;
  /** Overrides detection from GET /api/v1/version. */
  kind?: "forgejo" | "gitea" | undefined;
  /** How long a detected version is trusted before the client asks again (default 10 min). */
  versionTtlMs?: number;
  now?: () => number;
}

/** Low-cardinality metric label per endpoint family. */
type Endpoint = "version" | "user" | "registration_token" | "runners" | "jobs" | "hooks";

interface CallSpec {
  op: ForgejoOperation;
  endpoint: Endpoint;
  scope?: Scope | undefined;
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | number | readonly string[]> | undefined;
  body?: unknown;
  /** Statuses that are not errors. */
  ok: readonly number[];
  hint404?: string | undefined;
}

interface CallResult {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

const PAGE_LIMIT = 50;
const MAX_PAGES = 1000;

/**
 * The Forgejo/Gitea REST client (docs/upstream-contracts.md#forgejo-and-gitea-http-api). One
 * instance per server and token. Retrying is the caller's job: failures are ForgejoApiError with
 * `isTransient`. The PAT is only ever put in the Authorization header; server text is scrubbed of
 * it before it reaches an error.
 */
export class ForgejoClient implements ForgejoApi {
  private readonly base: URL;
  /** Sub-path Forgejo is served under, without a trailing slash ("" at the root). */
  private readonly basePath: string;
  private readonly now: () => number;
  private cached: { info: ServerInfo; at: number } | undefined;

  constructor(private readonly opts: ForgejoClientOptions) {
    const u = new URL(opts.baseUrl);
    // Credentials in the URL would travel in logs and errors; the PAT is the only credential.
    u.username = "";
    u.password = "";
    u.search = "";
    u.hash = "";
    this.base = u;
    this.basePath = u.pathname.replace(/\/+$/, "");
    this.now = opts.now ?? Date.now;
  }

  /** The server info from the last detection, if any (no call). */
  knownServerInfo(): ServerInfo | undefined {
    return this.cached?.info;
  }

  async serverInfo(): Promise<ServerInfo> {
    const res = await this.call({ op: "server_version", endpoint: "version", method: "GET", path: "/version", ok: [200] });
    const body = this.parse(res, versionBody, { op: "server_version", method: "GET", path: "/version" });
    let info: ServerInfo;
    try {
      info = parseServerVersion(body.version, this.opts.kind);
    } catch (err) {
      if (err instanceof VersionParseError) {
        throw new ForgejoApiError({
          kind: "bad_response",
          operation: "server_version",
          method: "GET",
          path: "/api/v1/version",
          status: res.status,
          hint: err.message,
        });
      }
      throw err;
    }
    this.cached = { info, at: this.now() };
    return info;
  }

  /** The token's own user (GET /api/v1/user); needs read:user. */
  async currentUser(): Promise<{ id: number; login: string; isAdmin: boolean }> {
    const res = await this.call({ op: "current_user", endpoint: "user", method: "GET", path: "/user", ok: [200] });
    const u = this.parse(res, userBody, { op: "current_user", method: "GET", path: "/user" });
    return { id: u.id, login: u.login, isAdmin: u.is_admin ?? false };
  }

  /**
   * GET …/actions/runners/registration-token; the instance scope uses /admin/runners/… (every
   * Forgejo >= 7 and Gitea) and falls back to /admin/actions/runners/…. GET returns the scope's
   * current token; Gitea's POST would mint a new one and invalidate the token runners that are
   * still starting have been given, so POST is only the last resort on a server without GET.
   */
  async registrationToken(scope: Scope): Promise<string> {
    const paths =
      scope.level === "instance"
        ? ["/admin/runners/registration-token", "/admin/actions/runners/registration-token"]
        : [`${scopeApiPrefix(scope)}/actions/runners/registration-token`];
    const base = { op: "registration_token" as const, endpoint: "registration_token" as const, scope };
    let last: { spec: CallSpec; res: CallResult } | undefined;
    for (const path of paths) {
      const spec: CallSpec = { ...base, method: "GET", path, ok: [200, 404, 405] };
      let res = await this.call(spec);
      if (res.status === 405) {
        // Gitea without the GET form: mint one.
        const post: CallSpec = { ...base, method: "POST", path, ok: [200, 201] };
        res = await this.call(post);
        return this.parse(res, registrationTokenBody, post).token;
      }
      if (res.status === 200) return this.parse(res, registrationTokenBody, spec).token;
      last = { spec, res };
    }
    throw this.httpError(last!.spec, last!.res);
  }

  async registerRunner(scope: Scope, o: { name: string; description?: string; ephemeral: boolean }): Promise<RegisteredRunner> {
    this.requireKnown(
      scope,
      "register_runner",
      (i) => i.runnersApi,
      'cannot register runners over REST (that needs Forgejo 15 or newer); set forgejo.registration to "token"',
    );
    const path = `${scopeApiPrefix(scope)}/actions/runners`;
    const body: Record<string, unknown> = { name: o.name, ephemeral: o.ephemeral };
    if (o.description !== undefined) body.description = o.description;
    const spec: CallSpec = {
      op: "register_runner",
      endpoint: "runners",
      scope,
      method: "POST",
      path,
      body,
      ok: [201, 200],
      hint404: this.runnersHint404(scope),
    };
    const res = await this.call(spec);
    return this.parse(res, registeredRunnerBody, spec);
  }

  async getRunner(scope: Scope, id: number): Promise<ActionRunner | undefined> {
    const path = `${scopeApiPrefix(scope)}/actions/runners/${id}`;
    const spec: CallSpec = { op: "get_runner", endpoint: "runners", scope, method: "GET", path, ok: [200, 404] };
    const res = await this.call(spec);
    if (res.status === 404) return undefined;
    const data = this.json(res, spec);
    if (isGiteaRunner(data)) return giteaRunner(this.parse(res, giteaRunnerBody, spec));
    return forgejoRunner(this.parse(res, forgejoRunnerBody, spec));
  }

  async deleteRunner(scope: Scope, id: number): Promise<boolean> {
    const path = `${scopeApiPrefix(scope)}/actions/runners/${id}`;
    const res = await this.call({ op: "delete_runner", endpoint: "runners", scope, method: "DELETE", path, ok: [204, 200, 404] });
    return res.status !== 404;
  }

  /** Runners owned by the scope (Forgejo: bare array, paged by X-Total-Count; Gitea: {runners,total_count}). */
  async listRunners(scope: Scope): Promise<ActionRunner[]> {
    this.requireKnown(
      scope,
      "list_runners",
      (i) => i.listRunnersApi ?? i.runnersApi,
      "has no runner list API (that needs Forgejo 15 or newer, or Gitea 1.24)",
    );
    const path = `${scopeApiPrefix(scope)}/actions/runners`;
    const out: ActionRunner[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const spec: CallSpec = {
        op: "list_runners",
        endpoint: "runners",
        scope,
        method: "GET",
        path,
        query: { page, limit: PAGE_LIMIT },
        ok: [200],
        hint404: this.runnersHint404(scope),
      };
      const res = await this.call(spec);
      const data = this.json(res, spec);
      let got: number;
      let total: number;
      if (Array.isArray(data)) {
        const list = this.parseValue(data, forgejoRunnerBody.array(), spec);
        out.push(...list.map(forgejoRunner));
        got = list.length;
        total = totalCount(res) ?? (list.length < PAGE_LIMIT ? out.length : Number.POSITIVE_INFINITY);
      } else {
        const body = this.parseValue(data, giteaRunnersBody, spec);
        out.push(...body.runners.map(giteaRunner));
        got = body.runners.length;
        total = body.total_count;
      }
      if (got === 0 || out.length >= total) break;
    }
    return out;
  }

  /**
   * Waiting and running jobs. Forgejo: GET …/actions/runners/jobs[?labels=a,b] (a null body is []);
   * without labels on Forgejo 11–13 the server matches nothing, so the client refuses that call.
   * Gitea: GET …/actions/jobs?status=queued&status=in_progress, mapped to Forgejo's words, with the
   * label rule applied here (Gitea has no label filter).
   */
  async searchJobs(scope: Scope, labels?: readonly string[]): Promise<ActionRunJob[]> {
    const info = await this.info();
    if (info.kind === "gitea") return this.giteaJobs(scope, info, labels);
    if (!info.jobsApi) {
      throw this.unsupported(
        "search_jobs",
        scope,
        `${describeServer(info)} has no jobs API (it arrived in Forgejo 11); upgrade Forgejo to let forgejo-nsc see waiting jobs`,
      );
    }
    if (labels === undefined && !info.jobsWithoutLabels) {
      throw this.unsupported(
        "search_jobs",
        scope,
        `${describeServer(info)} returns no jobs when no labels are given (fixed in Forgejo 14); pass the labels of each runner target`,
      );
    }
    const path =
      scope.level === "instance"
        ? info.major >= 15
          ? "/admin/actions/runners/jobs"
          : "/admin/runners/jobs"
        : `${scopeApiPrefix(scope)}/actions/runners/jobs`;
    const spec: CallSpec = {
      op: "search_jobs",
      endpoint: "jobs",
      scope,
      method: "GET",
      path,
      query: labels === undefined ? undefined : { labels: labels.join(",") },
      ok: [200],
    };
    const res = await this.call(spec);
    return this.parse(res, forgejoJobsBody, spec);
  }

  private async giteaJobs(scope: Scope, info: ServerInfo, labels?: readonly string[]): Promise<ActionRunJob[]> {
    if (!info.jobsApi)
      throw this.unsupported("search_jobs", scope, `${describeServer(info)} has no jobs API (it arrived in Gitea 1.24); upgrade Gitea`);
    const path = `${scopeApiPrefix(scope)}/actions/jobs`;
    const all: GiteaJobBody[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const spec: CallSpec = {
        op: "search_jobs",
        endpoint: "jobs",
        scope,
        method: "GET",
        path,
        query: { status: ["queued", "in_progress"], page, limit: PAGE_LIMIT },
        ok: [200],
      };
      const body = this.parse(await this.call(spec), giteaJobsBody, spec);
      all.push(...body.jobs);
      if (body.jobs.length === 0 || all.length >= body.total_count) break;
    }
    const jobs = all.map(giteaJob).filter((j) => j.status === "waiting" || j.status === "running");
    return labels === undefined ? jobs : jobs.filter((j) => labelsMatch(j.runs_on, labels));
  }

  async listHooks(scope: Scope): Promise<Hook[]> {
    const path = hooksPath(scope);
    const out: Hook[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const spec: CallSpec = {
        op: "list_hooks",
        endpoint: "hooks",
        scope,
        method: "GET",
        path,
        query: { page, limit: PAGE_LIMIT },
        ok: [200],
      };
      const res = await this.call(spec);
      const list = this.parse(res, hookBody.array(), spec);
      out.push(...list.map(toHook));
      const total = totalCount(res);
      if (list.length === 0 || (total !== undefined ? out.length >= total : list.length < PAGE_LIMIT)) break;
    }
    return out;
  }

  /** Type `forgejo` (Gitea: `gitea`), `active` always sent (it defaults to false), system hook at instance scope. */
  async createHook(scope: Scope, spec: HookSpec): Promise<Hook> {
    const info = this.opts.kind ? undefined : await this.info();
    const kind = this.opts.kind ?? info?.kind ?? "forgejo";
    const config: Record<string, string> = { url: spec.url, content_type: spec.content_type };
    if (spec.secret) config.secret = spec.secret;
    if (scope.level === "instance") config.is_system_webhook = "true";
    const call: CallSpec = {
      op: "create_hook",
      endpoint: "hooks",
      scope,
      method: "POST",
      path: hooksPath(scope),
      body: { type: kind, config, events: spec.events, active: spec.active },
      ok: [201, 200],
    };
    return toHook(this.parse(await this.call(call), hookBody, call));
  }

  /** PATCH with the full desired state; the secret cannot be changed this way (see hooks.ts). */
  async editHook(scope: Scope, id: number, spec: HookSpec): Promise<Hook> {
    const call: CallSpec = {
      op: "edit_hook",
      endpoint: "hooks",
      scope,
      method: "PATCH",
      path: `${hooksPath(scope)}/${id}`,
      body: { config: { url: spec.url, content_type: spec.content_type }, events: spec.events, active: spec.active },
      ok: [200],
    };
    return toHook(this.parse(await this.call(call), hookBody, call));
  }

  /** A hook that is already gone counts as deleted. */
  async deleteHook(scope: Scope, id: number): Promise<void> {
    await this.call({
      op: "delete_hook",
      endpoint: "hooks",
      scope,
      method: "DELETE",
      path: `${hooksPath(scope)}/${id}`,
      ok: [204, 200, 404],
    });
  }

  // ---- plumbing ----

  private async info(): Promise<ServerInfo> {
    const ttl = this.opts.versionTtlMs ?? 10 * 60_000;
    if (this.cached && this.now() - this.cached.at < ttl) return this.cached.info;
    return this.serverInfo();
  }

  private requireKnown(scope: Scope, op: ForgejoOperation, has: (i: ServerInfo) => boolean, why: string): void {
    const info = this.cached?.info;
    if (info && !has(info)) throw this.unsupported(op, scope, `${describeServer(info)} ${why}`);
  }

  private unsupported(op: ForgejoOperation, scope: Scope, hint: string): ForgejoApiError {
    return new ForgejoApiError({ kind: "unsupported", operation: op, scope, hint });
  }

  private runnersHint404(scope: Scope): string {
    const old = "or the server is older than Forgejo 15, which added the runner API (use forgejo.registration: token there)";
    if (scope.level === "repository") return `the repository ${scope.owner}/${scope.name} does not exist or has Actions disabled, ${old}`;
    if (scope.level === "organization") return `organization ${scope.owner} does not exist, ${old}`;
    return `the endpoint does not exist: ${old}`;
  }

  private scrub(text: string): string {
    const t = this.opts.token;
    return t.length >= 4 ? text.split(t).join("[redacted]") : text;
  }

  private async call(spec: CallSpec): Promise<CallResult> {
    const url = new URL(this.base.toString());
    const wanted = `${this.basePath}/api/v1${spec.path}`;
    url.pathname = wanted;
    // The URL resolves dot segments; a path it rewrote would reach another scope than asked for.
    if (url.pathname !== wanted)
      throw new InvalidScopeError(
        `refusing to call Forgejo at ${JSON.stringify(wanted.slice(0, 200))}: the URL would turn it into another path`,
      );
    for (const [k, v] of Object.entries(spec.query ?? {})) {
      if (Array.isArray(v)) for (const x of v as readonly string[]) url.searchParams.append(k, x);
      else url.searchParams.set(k, String(v));
    }
    const apiPath = `/api/v1${spec.path}`;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.opts.extraHeaders ?? {})) {
      if (k.toLowerCase() !== "authorization") headers[k] = v;
    }
    headers.authorization = `token ${this.opts.token}`;
    headers.accept = "application/json";
    let payload: string | undefined;
    if (spec.body !== undefined) {
      payload = JSON.stringify(spec.body);
      headers["content-type"] = "application/json";
    }

    const started = this.now();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.opts.timeoutMs);
    let result: CallResult;
    try {
      const res = await request(url, { method: spec.method, headers, body: payload, signal: controller.signal });
      const text = await res.body.text();
      result = { status: res.statusCode, text, headers: res.headers };
    } catch (err) {
      this.count(spec.endpoint, 0);
      const base: ForgejoErrorInit = { kind: "network", operation: spec.op, scope: spec.scope, method: spec.method, path: apiPath };
      if (timedOut) {
        this.log(spec, apiPath, 0, started, "timeout");
        throw new ForgejoApiError({ ...base, kind: "timeout", timeoutMs: this.opts.timeoutMs });
      }
      const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
      const message = this.scrub(errorMessage(err));
      const cause = Object.assign(new Error(message), code ? { code } : {});
      this.log(spec, apiPath, 0, started, code ?? "network");
      throw new ForgejoApiError({
        ...base,
        cause,
        hint: `could not reach Forgejo at ${this.base.host} (${code ?? message}); check forgejo.base_url and that the server is up`,
      });
    } finally {
      clearTimeout(timer);
    }
    this.count(spec.endpoint, result.status);
    this.log(spec, apiPath, result.status, started);
    if (!spec.ok.includes(result.status)) throw this.httpError(spec, result, result.status === 404 ? spec.hint404 : undefined);
    return result;
  }

  private count(endpoint: Endpoint, status: number): void {
    this.opts.metrics?.forgejoCalls.inc({ endpoint, status: String(status) });
  }

  private log(spec: CallSpec, path: string, status: number, started: number, failure?: string): void {
    const entry = {
      forgejo: { op: spec.op, method: spec.method, path, status, ms: this.now() - started, ...(failure ? { failure } : {}) },
    };
    this.opts.logger.debug(entry, "forgejo call");
  }

  private httpError(spec: Pick<CallSpec, "op" | "scope" | "method" | "path">, res: CallResult, hint?: string): ForgejoApiError {
    return new ForgejoApiError({
      kind: "http",
      operation: spec.op,
      scope: spec.scope,
      status: res.status,
      method: spec.method,
      path: `/api/v1${spec.path}`,
      serverMessage: this.serverMessage(res.text),
      hint,
    });
  }

  /** Forgejo's `message` field, or a short plain-text body; never more than 300 characters. */
  private serverMessage(text: string): string | undefined {
    let msg: string | undefined;
    try {
      const data: unknown = JSON.parse(text);
      if (data && typeof data === "object" && "message" in data && typeof data.message === "string") msg = data.message;
    } catch {
      const trimmed = text.trim();
      if (trimmed && !trimmed.startsWith("<")) msg = trimmed.replace(/\s+/g, " ");
    }
    return msg === undefined || msg === "" ? undefined : this.scrub(msg).slice(0, 300);
  }

  private json(res: CallResult, spec: Pick<CallSpec, "op" | "scope" | "method" | "path">): unknown {
    try {
      return JSON.parse(res.text) as unknown;
    } catch {
      const start = this.scrub(res.text.trim().slice(0, 40));
      throw new ForgejoApiError({
        kind: "bad_response",
        operation: spec.op,
        scope: spec.scope,
        status: res.status,
        method: spec.method,
        path: `/api/v1${spec.path}`,
        hint: `Forgejo answered HTTP ${res.status} with something that is not JSON (${JSON.stringify(start)}); check that forgejo.base_url is the Forgejo root URL and not a login page of a proxy`,
      });
    }
  }

  private parse<S extends z.ZodType>(res: CallResult, schema: S, spec: Pick<CallSpec, "op" | "scope" | "method" | "path">): z.output<S> {
    return this.parseValue(this.json(res, spec), schema, spec);
  }

  private parseValue<S extends z.ZodType>(data: unknown, schema: S, spec: Pick<CallSpec, "op" | "scope" | "method" | "path">): z.output<S> {
    const r = schema.safeParse(data);
    if (r.success) return r.data;
    const where = r.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`)
      .join("; ");
    throw new ForgejoApiError({
      kind: "bad_response",
      operation: spec.op,
      scope: spec.scope,
      method: spec.method,
      path: `/api/v1${spec.path}`,
      hint: `the answer does not have the documented shape (${where}); is this server a supported Forgejo or Gitea version?`,
    });
  }
}

function hooksPath(scope: Scope): string {
  return `${scopeApiPrefix(scope)}/hooks`;
}

function totalCount(res: CallResult): number | undefined {
  const raw = res.headers["x-total-count"];
  const v = Array.isArray(raw) ? raw[0] : raw;
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function isGiteaRunner(data: unknown): boolean {
  return typeof data === "object" && data !== null && "busy" in data && !("uuid" in data);
}

function forgejoRunner(r: ForgejoRunnerBody): ActionRunner {
  const out: ActionRunner = { id: r.id, name: r.name, status: r.status, labels: r.labels };
  if (r.uuid !== undefined) out.uuid = r.uuid;
  if (r.ephemeral !== undefined) out.ephemeral = r.ephemeral;
  return out;
}

/** Gitea says online/offline plus busy; Forgejo's words are offline/idle/active. */
function giteaRunner(r: GiteaRunnerBody): ActionRunner {
  const busy = r.busy ?? false;
  const status = r.status === "offline" ? "offline" : busy ? "active" : "idle";
  const out: ActionRunner = { id: r.id, name: r.name, status, labels: r.labels, busy };
  if (r.ephemeral !== undefined) out.ephemeral = r.ephemeral;
  return out;
}

/** Gitea's GitHub words back to Forgejo's: queued → waiting, in_progress → running, waiting → blocked. */
const GITEA_TO_FORGEJO: Record<string, string> = { queued: "waiting", in_progress: "running", waiting: "blocked", pending: "blocked" };

function giteaJob(j: GiteaJobBody): ActionRunJob {
  const status = j.status === "completed" ? (j.conclusion ?? "completed") : (GITEA_TO_FORGEJO[j.status] ?? j.status);
  const out: ActionRunJob = { id: j.id, runs_on: j.labels, status };
  if (j.run_id !== undefined) out.run_id = j.run_id;
  if (j.run_attempt !== undefined) out.attempt = j.run_attempt;
  if (j.name !== undefined) out.name = j.name;
  return out;
}

/**
 * Forgejo's rule (docs/upstream-contracts.md#jobs-search): with labels, a job matches when it has
 * labels and every one is in the set; an empty label list matches only jobs without labels.
 */
export function labelsMatch(runsOn: readonly string[], labels: readonly string[]): boolean {
  if (labels.length === 0) return runsOn.length === 0;
  return runsOn.length > 0 && runsOn.every((l) => labels.includes(l));
}

function toHook(h: HookBody): Hook {
  const cfg = h.config ?? {};
  const url = h.url ?? (typeof cfg.url === "string" ? cfg.url : "");
  const contentType = h.content_type ?? (typeof cfg.content_type === "string" ? cfg.content_type : undefined);
  const out: Hook = { id: h.id, type: h.type, url, events: h.events, active: h.active };
  if (contentType !== undefined) out.content_type = contentType;
  return out;
}
