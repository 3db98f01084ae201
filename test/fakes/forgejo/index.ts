import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { authenticate } from "./auth.js";
import { sendDelivery } from "./delivery.js";
import type { DeliverOptions } from "./delivery.js";
import type { FakeFeatures } from "./features.js";
import type { FakeCall, FakeDelivery, FakeHook, FakeJob, FakeKind, FakeRunner, FakeScope, FakeState } from "./model.js";
import { actionRunPayload, workflowJobPayload } from "./payloads.js";
import type { Reply } from "./router.js";
import { buildRouter } from "./routes.js";
import { FakeWorld } from "./world.js";
import type { AddJobSpec, ConnectSpec, OrgSpec, RepoSpec, UserSpec, WorldEvent } from "./world.js";

export type { AddJobSpec, ConnectSpec, OrgSpec, RepoSpec, UserSpec } from "./world.js";
export type * from "./model.js";
export { buildDelivery } from "./delivery.js";
export type { DeliverOptions } from "./delivery.js";

/** The PAT the fake accepts when `tokens` is not given: user "admin" (site admin), scope "all". */
export const FAKE_ADMIN_TOKEN = "fakeadminpat0123456789abcdef0123456789abcd";
export const FAKE_ADMIN_PASSWORD = "admin-password";

export interface FakeForgejoOptions {
  kind?: FakeKind;
  /** "15.0.3" (default), "16.0.0", "14.0.0", "11.0.0", "10.0.0"; Gitea "1.25.0" (default for gitea), "1.24.0" (no jobs search). */
  version?: string;
  /** Users; default one site admin "admin" with password FAKE_ADMIN_PASSWORD. */
  users?: UserSpec[];
  orgs?: OrgSpec[];
  repos?: RepoSpec[];
  /** PAT → scopes (owned by the first admin) or { user, scopes }. Default { FAKE_ADMIN_TOKEN: ["all"] }. */
  tokens?: Record<string, string[] | { user: string; scopes: string[] }>;
  now?: () => Date;
  /** Deliver webhooks for job/run events on their own (default true). */
  autoDeliver?: boolean;
  deliveryTimeoutMs?: number;
}

interface Failure {
  pattern: string | RegExp;
  method?: string | undefined;
  status: number;
  remaining: number;
  body?: unknown;
}
interface Delay {
  pattern?: string | RegExp | undefined;
  ms: number;
}

export interface FakeForgejo {
  /** Base URL, e.g. http://127.0.0.1:40123 (API under /api/v1). */
  readonly url: string;
  readonly kind: FakeKind;
  readonly world: FakeWorld;
  readonly state: FakeState;
  readonly features: FakeFeatures;
  /** Every request, in order. */
  readonly calls: FakeCall[];
  /** Every webhook delivery the fake made (automatic or through deliver()). */
  readonly deliveries: FakeDelivery[];
  callsTo(pathPart: string | RegExp, method?: string): FakeCall[];
  clearCalls(): void;
  close(): Promise<void>;
  setVersion(version: string): void;

  addUser(spec: UserSpec): void;
  addOrg(spec: OrgSpec): void;
  addRepo(spec: RepoSpec): void;
  addToken(token: string, scopes: string[], user?: string): void;
  setActionsEnabled(repo: string, enabled: boolean): void;
  registrationToken(scope: FakeScope): string;

  /** A workflow job appears (waiting, or blocked). */
  addJob(spec: AddJobSpec): FakeJob;
  unblockJob(id: number): FakeJob;
  rerunJob(id: number): FakeJob;
  /** Register/declare/fetch as forgejo-runner does; returns the job the runner was handed, if any. */
  connectRunner(spec: ConnectSpec): { runner: FakeRunner; job?: FakeJob };
  /** A simulated instance-level runner with the job's labels takes exactly this job. */
  takeJob(id: number): { runner: FakeRunner; job: FakeJob };
  /** A connected runner polls again (FetchTask). */
  fetchTask(uuid: string, handle?: string): FakeJob | undefined;
  disconnectRunner(uuid: string): void;
  /** The runner reports the final result; an ephemeral runner is deleted. */
  finishJob(id: number, result?: "success" | "failure" | "cancelled" | "skipped"): FakeJob;
  job(id: number): FakeJob | undefined;
  runner(idOrUuid: number | string): FakeRunner | undefined;

  /** The next `count` requests whose path matches (substring or RegExp) get `status`. */
  failNext(pattern: string | RegExp, status: number, count?: number, opts?: { method?: string; body?: unknown }): void;
  /** Answers matching requests (all when no pattern) only after `ms`; delay(0) clears. */
  delay(ms: number, pattern?: string | RegExp): void;

  /** Sends one delivery the way the hook (or a bare URL with options) would. */
  deliver(target: number | FakeHook | string, event: string, payload: unknown, opts?: DeliverOptions): Promise<FakeDelivery>;
  /** Resolves when every delivery started so far has finished. */
  settled(): Promise<void>;
  payloads: {
    actionRun(runId: number, action: "success" | "failure" | "recover"): Record<string, unknown>;
    workflowJob(jobId: number, action: "queued" | "waiting" | "in_progress" | "completed"): Record<string, unknown>;
  };
}

export async function startFakeForgejo(opts: FakeForgejoOptions = {}): Promise<FakeForgejo> {
  const kind = opts.kind ?? "forgejo";
  const now = opts.now ?? (() => new Date());
  const router = buildRouter();
  const calls: FakeCall[] = [];
  const deliveries: FakeDelivery[] = [];
  const inflight = new Set<Promise<unknown>>();
  const failures: Failure[] = [];
  let delays: Delay[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let base = "";

  const world = new FakeWorld(kind, opts.version ?? (kind === "gitea" ? "1.25.0" : "15.0.3"), now, (ev) => {
    if (opts.autoDeliver !== false) onWorldEvent(ev);
  });
  for (const u of opts.users ?? [{ login: "admin", password: FAKE_ADMIN_PASSWORD, isAdmin: true }]) world.addUser(u);
  for (const o of opts.orgs ?? []) world.addOrg(o);
  for (const r of opts.repos ?? []) world.addRepo(r);
  const defaultOwner = () => (world.state.users.find((u) => u.isAdmin) ?? world.state.users[0])?.login ?? "admin";
  for (const [pat, spec] of Object.entries(opts.tokens ?? { [FAKE_ADMIN_TOKEN]: ["all"] })) {
    if (Array.isArray(spec)) world.addToken(pat, defaultOwner(), spec);
    else world.addToken(pat, spec.user, spec.scopes);
  }

  const matches = (p: string | RegExp | undefined, path: string) =>
    p === undefined || (typeof p === "string" ? path.includes(p) : p.test(path));

  function track<T>(p: Promise<T>): Promise<T> {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    return p;
  }

  function deliverToHook(hook: FakeHook, event: string, payload: unknown, eventType?: string): Promise<FakeDelivery> {
    const targetType = hook.scope.level === "instance" ? (hook.isSystem ? "system" : "default") : hook.scope.level;
    return deliver(hook.url, event, payload, {
      secret: hook.secret,
      contentType: hook.contentType,
      authorizationHeader: hook.authorizationHeader || undefined,
      targetType,
      hookId: hook.id,
      eventType,
      timeoutMs: opts.deliveryTimeoutMs,
    });
  }

  function deliver(url: string, event: string, payload: unknown, o: DeliverOptions): Promise<FakeDelivery> {
    return track(
      sendDelivery(kind, url, event, payload, o).then((d) => {
        deliveries.push(d);
        return d;
      }),
    );
  }

  function onWorldEvent(ev: WorldEvent): void {
    if (ev.type === "job" && world.features.giteaActions) {
      const payload = workflowJobPayload(world, base, ev.job.id, ev.action);
      for (const h of world.hooksForRepo(ev.job.repoId))
        if (h.events.includes("workflow_job")) void deliverToHook(h, "workflow_job", payload);
    }
    if (ev.type === "run_finished" && world.features.actionRunHooks) {
      const sends: ["success" | "failure" | "recover", string][] = [[ev.action, `action_run_${ev.action}`]];
      if (ev.recover) sends.push(["recover", "action_run_recover"]);
      for (const [action, event] of sends) {
        const payload = actionRunPayload(world, base, ev.run.id, action);
        for (const h of world.hooksForRepo(ev.run.repoId)) if (h.events.includes(event)) void deliverToHook(h, event, payload);
      }
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", base);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown = text === "" ? undefined : text;
    if (text && (req.headers["content-type"] ?? "").includes("json")) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const auth = authenticate(world, req, url.searchParams);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (k !== "authorization" && v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    const query: Record<string, string | string[]> = {};
    for (const k of new Set(url.searchParams.keys())) {
      const all = url.searchParams.getAll(k);
      query[k] = all.length === 1 ? all[0]! : all;
    }
    const call: FakeCall = {
      method: req.method ?? "GET",
      path: url.pathname,
      query,
      headers,
      auth: auth.call,
      body,
      status: 0,
      at: now().toISOString(),
    };
    calls.push(call);

    const delay = delays.find((d) => matches(d.pattern, url.pathname));
    if (delay && delay.ms > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, delay.ms);
        timers.add(t);
      });
      if (res.destroyed) return;
    }

    let reply: Reply;
    const failure = failures.find((f) => f.remaining > 0 && matches(f.pattern, url.pathname) && (!f.method || f.method === call.method));
    if (failure) {
      failure.remaining -= 1;
      reply = { status: failure.status, json: failure.body ?? { message: `fake failure ${failure.status}`, url: `${base}/api/swagger` } };
    } else if (!url.pathname.startsWith("/api/v1/")) {
      reply = { status: 404, json: { message: "not found" } };
    } else {
      reply = router.dispatch(world, base, call.method, url.pathname.slice("/api/v1".length), url.searchParams, body, auth);
    }
    call.status = reply.status;
    const out = reply.status === 204 || reply.status === 405 || !("json" in reply) ? "" : JSON.stringify(reply.json);
    res.writeHead(reply.status, { ...(out ? { "Content-Type": "application/json;charset=utf-8" } : {}), ...reply.headers });
    res.end(out);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ message: `fake Forgejo crashed: ${err instanceof Error ? err.message : String(err)}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const runnerBy = (idOrUuid: number | string) =>
    world.state.runners.find((r) => (typeof idOrUuid === "number" ? r.id === idOrUuid : r.uuid === idOrUuid));

  return {
    url: base,
    kind,
    world,
    get state() {
      return world.state;
    },
    get features() {
      return world.features;
    },
    calls,
    deliveries,
    callsTo: (p, method) => calls.filter((c) => matches(p, c.path) && (!method || c.method === method)),
    clearCalls: () => void calls.splice(0, calls.length),
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.allSettled([...inflight]);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    setVersion: (v) => world.setVersion(v),
    addUser: (u) => void world.addUser(u),
    addOrg: (o) => world.addOrg(o),
    addRepo: (r) => void world.addRepo(r),
    addToken: (t, scopes, user) => void world.addToken(t, user ?? defaultOwner(), scopes),
    setActionsEnabled(repo, enabled) {
      const [owner = "", name = ""] = repo.split("/");
      const r = world.repo(owner, name) ?? world.addRepo({ owner, name });
      r.actionsEnabled = enabled;
    },
    registrationToken: (scope) => world.registrationToken(scope),
    addJob: (spec) => world.addJob(spec),
    unblockJob: (id) => world.unblockJob(id),
    rerunJob: (id) => world.rerunJob(id),
    connectRunner: (spec) => world.connectRunner(spec),
    takeJob: (id) => world.takeJob(id),
    fetchTask(uuid, handle) {
      const r = world.state.runners.find((x) => x.uuid === uuid && !x.deleted);
      if (!r) throw new Error(`fake Forgejo: no runner with uuid ${uuid}`);
      r.online = true;
      return world.fetchTask(r, handle);
    },
    disconnectRunner(uuid) {
      const r = world.state.runners.find((x) => x.uuid === uuid);
      if (r) r.online = false;
    },
    finishJob: (id, result) => world.finishJob(id, result),
    job: (id) => world.job(id),
    runner: runnerBy,
    failNext(pattern, status, count = 1, o = {}) {
      failures.push({ pattern, status, remaining: count, method: o.method, body: o.body });
    },
    delay(ms, pattern) {
      delays = delays.filter((d) => String(d.pattern) !== String(pattern));
      if (ms > 0) delays.push({ ms, pattern });
    },
    deliver(target, event, payload, o = {}) {
      if (typeof target === "string") return deliver(target, event, payload, o);
      const hook = typeof target === "number" ? world.state.hooks.find((h) => h.id === target) : target;
      if (!hook) throw new Error(`fake Forgejo: no hook ${String(target)}`);
      return deliverToHook(hook, event, payload, o.eventType);
    },
    async settled() {
      while (inflight.size) await Promise.allSettled([...inflight]);
    },
    payloads: {
      actionRun: (runId, action) => actionRunPayload(world, base, runId, action),
      workflowJob: (jobId, action) => workflowJobPayload(world, base, jobId, action),
    },
  };
}
