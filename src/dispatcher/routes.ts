import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HttpError, badRequest, conflict, notFound } from "../http/errors.js";
import { parseInput } from "../http/server.js";
import { commaList, runnerListQuerySchema } from "../api/runner-view.js";
import { TERMINAL_STATES } from "../api/states.js";
import type { RunnerState } from "../api/states.js";
import { acceptDispatch } from "./accept.js";
import type { AcceptDeps } from "./accept.js";
import type { DispatcherContext } from "./context.js";
import { errorMessage } from "./context.js";
import { finishRunner } from "./finish.js";
import { runnerTakingJob } from "./idle-check.js";
import { IDEMPOTENCY_KEY, dispatchRequestSchema, waitQuerySchema } from "../api/dispatch-request.js";
import type { DispatchRequest } from "../api/dispatch-request.js";
import type { RunnerRecord } from "../store/types.js";
import type { Scheduler } from "./scheduler.js";
import { dispatchView, runnerView } from "./views.js";
import { waitForRunners } from "./wait.js";

type Guard = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

export interface DispatcherRoutesOptions {
  ctx: DispatcherContext;
  accept: AcceptDeps;
  scheduler: Scheduler;
  auth: Guard;
  spendLimit: Guard;
}

/** The dispatch outcome of an answer the handler did not count (auth, rate limit, parsing, shutdown, a bad query). */
function unhandledOutcome(status: number): string {
  if (status === 401) return "unauthorized";
  if (status === 429) return "rate_limited";
  if (status === 503) return "unavailable";
  return status >= 400 && status < 500 ? "invalid" : "error";
}

/**
 * The dispatcher's HTTP API, as one encapsulated plugin receiving its dependencies. Auth and the
 * rate limit run on onRequest, before the body is read: an unauthenticated client cannot hold a
 * connection open by sending a body slowly.
 */
export async function dispatcherRoutes(app: FastifyInstance, opts: DispatcherRoutesOptions): Promise<void> {
  dispatchRoute(app, opts);
  runnerRoutes(app, opts);
  dispatchReadRoute(app, opts);
}

/** Counts each dispatch request once: by the handler where it decided, else from the answer's status. */
interface DispatchCounting {
  count(req: FastifyRequest, outcome: string): void;
  countAnswer(req: FastifyRequest, reply: FastifyReply): Promise<void>;
}

function dispatchCounting(metrics: DispatcherContext["metrics"]): DispatchCounting {
  // Answers the handler did not count (auth, rate limit, body parsing, shutdown) are counted from their status.
  const counted = new WeakSet<FastifyRequest>();
  return {
    count: (req, outcome) => {
      counted.add(req);
      metrics.dispatchRequests.inc({ outcome });
    },
    countAnswer: async (req, reply) => {
      if (!counted.has(req)) metrics.dispatchRequests.inc({ outcome: unhandledOutcome(reply.statusCode) });
    },
  };
}

/** POST /api/v1/dispatch: accept (or find the duplicate of) a dispatch, then wait for its runners if asked. */
function dispatchRoute(app: FastifyInstance, opts: DispatcherRoutesOptions): void {
  const { ctx, scheduler } = opts;
  const { count, countAnswer } = dispatchCounting(ctx.metrics);
  app.post("/api/v1/dispatch", { onRequest: [opts.auth, opts.spendLimit], onResponse: countAnswer }, async (req, reply) => {
    const query = parseInput(waitQuerySchema, req.query, "query");
    const header = req.headers["idempotency-key"];
    if (header !== undefined && (typeof header !== "string" || !IDEMPOTENCY_KEY.test(header))) {
      count(req, "invalid");
      throw badRequest("Idempotency-Key must be 1 to 200 printable ASCII characters without spaces");
    }
    let accepted;
    try {
      accepted = await acceptDispatch(opts.accept, dispatchBody(req.body), header);
    } catch (err) {
      count(req, refusedOutcome(err));
      throw err;
    }
    count(req, accepted.status === 202 ? "accepted" : "duplicate");
    if (accepted.status === 202) {
      req.log.info(
        { dispatch: accepted.dispatch.id, runners: accepted.dispatch.runnerNames, key: accepted.dispatch.idempotencyKey },
        "dispatch accepted",
      );
      scheduler.kick();
    }
    if (!query.wait) return reply.status(accepted.status).send(dispatchView(accepted.dispatch, accepted.runners));
    // The connection is silent while we wait: keep http.connection_timeout from closing it.
    req.raw.socket?.setTimeout((query.timeout ?? 300_000) + 60_000);
    const target: readonly RunnerState[] = query.wait === "finished" ? TERMINAL_STATES : ["running", "finishing", ...TERMINAL_STATES];
    const result = await waitForRunners(ctx, accepted.dispatch.runnerNames, target, query.timeout ?? 300_000, req.raw);
    const runners = result.runners;
    return reply.status(accepted.status).send({
      ...dispatchView(accepted.dispatch, runners),
      wait: { for: query.wait, complete: result.complete },
      failed: runners.filter((r) => r.state === "failed").map((r) => ({ name: r.name, reason: r.reason })),
    });
  });
}

/** The dispatch request in a body: no body means every default; `null` (or any non-object) is a mistake to report. */
function dispatchBody(body: unknown): DispatchRequest {
  if (body === null || (body !== undefined && (typeof body !== "object" || Array.isArray(body)))) {
    throw badRequest(
      `invalid dispatch request: the body must be a JSON object such as {"count": 1}, not ${body === null ? "null" : Array.isArray(body) ? "an array" : typeof body}; send no body for every default`,
    );
  }
  return parseInput(dispatchRequestSchema, body ?? {}, "dispatch request");
}

/** The outcome counted for a dispatch that was not accepted, from the error's status. */
function refusedOutcome(err: unknown): string {
  const status = (err as { statusCode?: number }).statusCode;
  return status === 403 ? "forbidden" : status === 409 ? "conflict" : status === 429 ? "queue_full" : status === 400 ? "invalid" : "error";
}

/** GET /api/v1/runners, GET and DELETE /api/v1/runners/:name. */
function runnerRoutes(app: FastifyInstance, opts: DispatcherRoutesOptions): void {
  const { ctx } = opts;
  app.get("/api/v1/runners", { onRequest: [opts.auth] }, async (req) => {
    const q = parseInput(runnerListQuerySchema, req.query, "query");
    const runners = await ctx.records.store.listRunners({
      states: commaList(q.state) as RunnerState[] | undefined,
      labels: commaList(q.labels),
      // Scope keys are stored in lower case (Forgejo names are case-insensitive).
      scopeKey: q.scope?.toLowerCase(),
      jobId: q.job,
      dispatchId: q.dispatch,
      limit: q.limit,
    });
    return { runners: runners.map((r) => runnerView(r)) };
  });

  app.get<{ Params: { name: string } }>("/api/v1/runners/:name", { onRequest: [opts.auth] }, async (req) => {
    const r = await ctx.records.store.getRunner(req.params.name);
    if (!r) throw notFound(`no runner named "${req.params.name}"; GET /api/v1/runners lists them`);
    return runnerView(r, { history: true });
  });

  app.delete<{ Params: { name: string }; Querystring: { reason?: string; if_idle?: string } }>(
    "/api/v1/runners/:name",
    { onRequest: [opts.auth] },
    async (req) => {
      const r = await ctx.records.store.getRunner(req.params.name);
      if (!r) throw notFound(`no runner named "${req.params.name}"; GET /api/v1/runners lists them`);
      const why = typeof req.query.reason === "string" && req.query.reason ? req.query.reason.slice(0, 200) : "no reason given";
      const reason = `cancelled through the API (${why})`;
      if (req.query.if_idle === "true" && r.state === "running") await refuseIfBusy(ctx, r);
      // A launch in progress finishes in the background and destroys the instance it made (launch.ts).
      if (r.state === "pending" || r.state === "launching" || r.state === "running") {
        await finishRunner(ctx, r, { to: "failed", reason });
      }
      req.log.info({ runner: r.name, instance: r.instanceId }, `cancel requested: ${why}`);
      const latest = (await ctx.records.store.getRunner(r.name)) ?? r;
      return runnerView(latest, { history: true });
    },
  );
}

/**
 * The autoscaler stops idle warm runners: look at Forgejo once more, right before, so a runner that
 * took a job since the autoscaler looked is left alone (the window shrinks to this call). Throws
 * 409 when it is busy, 503 when Forgejo cannot tell.
 */
async function refuseIfBusy(ctx: DispatcherContext, r: RunnerRecord): Promise<void> {
  let busy: boolean;
  try {
    busy = await runnerTakingJob(ctx, r);
  } catch (err) {
    throw new HttpError(
      503,
      "forgejo_unavailable",
      `cannot tell whether runner ${r.name} is idle (${errorMessage(err)}); it was not stopped, ask again later`,
      undefined,
      {
        "retry-after": "10",
      },
    );
  }
  if (busy) throw conflict(`runner ${r.name} is running a job; it was not stopped (if_idle=true)`, { state: r.state, busy: true });
}

/** GET /api/v1/dispatches/:id: a dispatch with its runners. */
function dispatchReadRoute(app: FastifyInstance, opts: DispatcherRoutesOptions): void {
  const { ctx } = opts;
  app.get<{ Params: { id: string } }>("/api/v1/dispatches/:id", { onRequest: [opts.auth] }, async (req) => {
    const d = await ctx.records.store.getDispatch(req.params.id);
    if (!d) throw notFound(`no dispatch with id "${req.params.id}"`);
    const runners = await ctx.records.store.listRunners({ dispatchId: d.id });
    return { ...dispatchView(d, runners), runners: runners.map((r) => runnerView(r)) };
  });
}
