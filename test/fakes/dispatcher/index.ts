import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { formatIssues } from "../../../src/config/load.js";
import { IDEMPOTENCY_KEY, dispatchRequestSchema } from "../../../src/api/dispatch-request.js";
import { scopeKey } from "../../../src/forgejo/scope.js";
import type { Scope } from "../../../src/forgejo/scope.js";

/**
 * A fake forgejo-nsc dispatcher implementing the HTTP contract the autoscaler calls:
 * POST /api/v1/dispatch (bearer auth, Idempotency-Key: 202 created, 200 same key and body,
 * 409 same key other body, 400, 401, 403, 429 with Retry-After) and GET /api/v1/runners
 * (state/labels/scope/job filters). It launches nothing: runners stay "pending" until a test (or
 * the onDispatch hook) moves them. Every request is recorded.
 */

export type FakeRunnerState = "pending" | "launching" | "running" | "finishing" | "done" | "failed";

export interface FakeDispatchedRunner {
  name: string;
  dispatch_id: string;
  state: FakeRunnerState;
  reason: string;
  platform: "linux";
  labels: string[];
  scope: Scope;
  scope_key: string;
  job: { id: number; attempt: number | null; handle: string | null } | null;
  instance_id: string | null;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  ttl: string | null;
  machine_type: string | null;
  image: string | null;
  env_keys: string[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** "none", or whether the bearer token matched. The token itself is never kept. */
  auth: "none" | "ok" | "wrong";
  idempotencyKey?: string | undefined;
  body?: unknown;
  /** -1: the request was carried out but the answer was cut off (dropAnswerNext). */
  status: number;
  at: string;
}

export interface RecordedDispatch {
  key: string | undefined;
  body: Record<string, unknown>;
  dispatchId: string;
  runners: string[];
}

export interface FakeDispatcherOptions {
  /** Require Authorization: Bearer <token>. */
  token?: string;
  /** Label names allowed (exact); others get 403. Empty: every label. */
  allowLabels?: string[];
  /** Pending runners at most; beyond that 429 with Retry-After. */
  maxQueue?: number;
  /** Called after each accepted dispatch (e.g. to connect runners to a fake Forgejo). */
  onDispatch?: (runners: FakeDispatchedRunner[], body: Record<string, unknown>) => void;
  now?: () => Date;
  /** Fixed port (a restarted fake keeps its URL). */
  port?: number;
}

interface Failure {
  path: string;
  method?: string | undefined;
  status: number;
  remaining: number;
  retryAfter?: number | undefined;
}

export interface FakeDispatcher {
  readonly url: string;
  readonly requests: RecordedRequest[];
  readonly dispatches: RecordedDispatch[];
  readonly runners: FakeDispatchedRunner[];
  /** POSTs to /api/v1/dispatch (every answer). */
  posts(): RecordedRequest[];
  /** Accepted (202) dispatches whose body names this job. */
  createdForJob(jobId: number): RecordedDispatch[];
  /** Runners Forgejo would show taking a job: DELETE …?if_idle=true answers 409 for them while running. */
  readonly busy: Set<string>;
  runner(name: string): FakeDispatchedRunner | undefined;
  setState(name: string, state: FakeRunnerState, reason?: string): FakeDispatchedRunner;
  /** The next `count` requests to `path` (substring) answer `status`. */
  failNext(path: string, status: number, count?: number, opts?: { method?: string; retryAfter?: number }): void;
  /** The next `count` dispatches are carried out, but the connection is cut instead of answering. */
  dropAnswerNext(count?: number): void;
  setOnDispatch(fn: FakeDispatcherOptions["onDispatch"]): void;
  /** An outage: stop listening (connections are refused) until start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

const TERMINAL = new Set(["done", "failed"]);

export async function startFakeDispatcher(opts: FakeDispatcherOptions = {}): Promise<FakeDispatcher> {
  const now = opts.now ?? (() => new Date());
  const requests: RecordedRequest[] = [];
  const dispatches: RecordedDispatch[] = [];
  const runners: FakeDispatchedRunner[] = [];
  const busy = new Set<string>();
  const byKey = new Map<string, { canonical: string; dispatchId: string; runners: string[] }>();
  const failures: Failure[] = [];
  let onDispatch = opts.onDispatch;
  let dropAnswers = 0;
  let seq = 0;
  let port = opts.port ?? 0;
  let server: Server | undefined;

  const send = (res: ServerResponse, rec: RecordedRequest, status: number, body: unknown, headers: Record<string, string> = {}) => {
    rec.status = status;
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const view = (dispatchId: string, names: string[]) => ({
    dispatch_id: dispatchId,
    status_url: `/api/v1/dispatches/${dispatchId}`,
    runners: names.map((n) => {
      const r = runners.find((x) => x.name === n) as FakeDispatchedRunner;
      return { name: r.name, state: r.state, reason: r.reason, instance_id: r.instance_id, status_url: `/api/v1/runners/${r.name}` };
    }),
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const header = req.headers.authorization;
    const auth: RecordedRequest["auth"] = !header ? "none" : opts.token && header === `Bearer ${opts.token}` ? "ok" : "wrong";
    const key = typeof req.headers["idempotency-key"] === "string" ? req.headers["idempotency-key"] : undefined;
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const rec: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      auth,
      idempotencyKey: key,
      body,
      status: 0,
      at: now().toISOString(),
    };
    requests.push(rec);

    const failure = failures.find((f) => f.remaining > 0 && url.pathname.includes(f.path) && (!f.method || f.method === rec.method));
    if (failure) {
      failure.remaining--;
      return send(
        res,
        rec,
        failure.status,
        { error: "fake_failure", message: `fake dispatcher failure ${failure.status}` },
        failure.retryAfter !== undefined ? { "retry-after": String(failure.retryAfter) } : {},
      );
    }
    if (opts.token && auth !== "ok") {
      return send(
        res,
        rec,
        401,
        { error: "unauthorized", message: "missing bearer token: send Authorization: Bearer <token>" },
        { "www-authenticate": 'Bearer realm="forgejo-nsc"' },
      );
    }

    if (rec.method === "POST" && url.pathname === "/api/v1/dispatch") {
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
        return send(res, rec, 400, {
          error: "invalid_request",
          message: "Idempotency-Key must be 1 to 200 printable ASCII characters without spaces",
        });
      }
      const parsed = dispatchRequestSchema.safeParse(body ?? {});
      if (!parsed.success) {
        const problems = formatIssues(parsed.error.issues);
        return send(res, rec, 400, {
          error: "invalid_request",
          message: `invalid dispatch request: ${problems.join("; ")}`,
          details: { problems },
        });
      }
      const req2 = parsed.data;
      const labels = req2.labels ?? ["namespace-profile-linux-medium"];
      if (opts.allowLabels?.length && !labels.every((l) => opts.allowLabels!.includes(l.split(":")[0]!))) {
        return send(res, rec, 403, { error: "forbidden", message: `labels ${labels.join(",")} are not allowed by namespace.allow_labels` });
      }
      const c = canonical(body);
      if (key !== undefined) {
        const existing = byKey.get(key);
        if (existing) {
          if (existing.canonical !== c) {
            return send(res, rec, 409, { error: "conflict", message: `Idempotency-Key ${key} was used with a different request` });
          }
          return send(res, rec, 200, view(existing.dispatchId, existing.runners));
        }
      }
      const pending = runners.filter((r) => r.state === "pending").length;
      if (opts.maxQueue !== undefined && pending + req2.count > opts.maxQueue) {
        return send(
          res,
          rec,
          429,
          { error: "queue_full", message: `${pending} runners are pending (max_queue ${opts.maxQueue})` },
          { "retry-after": "1" },
        );
      }
      const dispatchId = `d${++seq}`;
      const scope: Scope = req2.scope ?? { level: "instance" };
      const at = now().toISOString();
      const created: FakeDispatchedRunner[] = [];
      for (let i = 0; i < req2.count; i++) {
        const r: FakeDispatchedRunner = {
          name: `fake-runner-${seq}-${i}`,
          dispatch_id: dispatchId,
          state: "pending",
          reason: "accepted; waiting for a launch slot",
          platform: "linux",
          labels,
          scope,
          scope_key: scopeKey(scope),
          job: req2.job ? { id: req2.job.id, attempt: req2.job.attempt ?? null, handle: req2.job.handle ?? null } : null,
          instance_id: null,
          created_at: at,
          updated_at: at,
          expires_at: null,
          ttl: typeof (body as { ttl?: unknown }).ttl === "string" ? ((body as { ttl: string }).ttl as string) : null,
          machine_type: req2.machine_type ?? null,
          image: req2.image ?? null,
          env_keys: Object.keys(req2.env ?? {}).sort(),
        };
        runners.push(r);
        created.push(r);
      }
      const names = created.map((r) => r.name);
      if (key !== undefined) byKey.set(key, { canonical: c, dispatchId, runners: names });
      dispatches.push({ key, body: body as Record<string, unknown>, dispatchId, runners: names });
      if (dropAnswers > 0) {
        dropAnswers--;
        rec.status = -1;
        res.socket?.destroy();
      } else {
        send(res, rec, 202, view(dispatchId, names));
      }
      onDispatch?.(created, body as Record<string, unknown>);
      return;
    }

    if (rec.method === "GET" && url.pathname === "/api/v1/runners") {
      const states = url.searchParams.get("state")?.split(",").filter(Boolean);
      const labels = url.searchParams.get("labels")?.split(",").filter(Boolean);
      const scope = url.searchParams.get("scope");
      const job = url.searchParams.get("job");
      const limit = Number(url.searchParams.get("limit") ?? 500);
      if (!Number.isInteger(limit) || limit < 1 || limit > 5000) {
        return send(res, rec, 400, { error: "invalid_request", message: "invalid query: limit: must be an integer from 1 to 5000" });
      }
      const list = runners.filter(
        (r) =>
          (!states || states.includes(r.state)) &&
          (!labels || labels.every((l) => r.labels.includes(l))) &&
          (!scope || r.scope_key === scope) &&
          (!job || r.job?.id === Number(job)),
      );
      return send(res, rec, 200, { runners: list.slice(0, limit) });
    }

    const m = /^\/api\/v1\/runners\/([^/]+)$/.exec(url.pathname);
    if (rec.method === "GET" && m) {
      const r = runners.find((x) => x.name === decodeURIComponent(m[1]!));
      return r ? send(res, rec, 200, r) : send(res, rec, 404, { error: "not_found", message: "no such runner" });
    }
    // As the dispatcher's routes.ts: a live runner is finished as failed with the reason given.
    if (rec.method === "DELETE" && m) {
      const r = runners.find((x) => x.name === decodeURIComponent(m[1]!));
      if (!r) return send(res, rec, 404, { error: "not_found", message: "no such runner" });
      if (url.searchParams.get("if_idle") === "true" && r.state === "running" && busy.has(r.name)) {
        return send(res, rec, 409, { error: "conflict", message: `runner ${r.name} is running a job; it was not stopped (if_idle=true)` });
      }
      if (r.state === "pending" || r.state === "launching" || r.state === "running") {
        r.state = "failed";
        r.reason = `cancelled through the API (${url.searchParams.get("reason") || "no reason given"})`;
      }
      return send(res, rec, 200, r);
    }
    return send(res, rec, 404, { error: "not_found", message: `no route for ${rec.method} ${url.pathname}` });
  }

  async function start(): Promise<void> {
    const s = createServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "internal", message: `fake dispatcher crashed: ${String(err)}` }));
      });
    });
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => resolve());
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  }

  async function stop(): Promise<void> {
    const s = server;
    server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  await start();
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    requests,
    dispatches,
    runners,
    busy,
    posts: () => requests.filter((r) => r.method === "POST" && r.path === "/api/v1/dispatch"),
    createdForJob: (id) => dispatches.filter((d) => (d.body.job as { id?: number } | undefined)?.id === id),
    runner: (name) => runners.find((r) => r.name === name),
    setState(name, state, reason) {
      const r = runners.find((x) => x.name === name);
      if (!r) throw new Error(`fake dispatcher: no runner ${name}`);
      if (TERMINAL.has(r.state)) throw new Error(`fake dispatcher: runner ${name} is already ${r.state}`);
      r.state = state;
      r.reason = reason ?? state;
      r.updated_at = now().toISOString();
      return r;
    },
    failNext(path, status, count = 1, o = {}) {
      failures.push({ path, status, remaining: count, method: o.method, retryAfter: o.retryAfter });
    },
    dropAnswerNext(count = 1) {
      dropAnswers += count;
    },
    setOnDispatch(fn) {
      onDispatch = fn;
    },
    stop,
    start,
    close: stop,
  };
}
