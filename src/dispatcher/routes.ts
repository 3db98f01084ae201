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
  const { ctx, scheduler } = opts;
  const metrics = ctx.metrics;
  // Answers the handler did not count (auth, rate limit, body parsing, shutdown) are counted from their status.
  const counted = new WeakSet<FastifyRequest>();
  const count = (req: FastifyRequest, outcome: string) => {
    counted.add(req);
    metrics.dispatchRequests.inc({ outcome });
  };
  const countAnswer = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!counted.has(req)) metrics.dispatchRequests.inc({ outcome: unhandledOutcome(reply.statusCode) });
  };

  app.post("/api/v1/dispatch", { onRequest: [opts.auth, opts.spendLimit], onResponse: countAnswer }, async (req, reply) => {
    const query = parseInput(waitQuerySchema, req.query, "query");
    const header = req.headers["idempotency-key"];
    if (header !== undefined && (typeof header !== "string" || !IDEMPOTENCY_KEY.test(header))) {
      count(req, "invalid");
      throw badRequest("Idempotency-Key must be 1 to 200 printable ASCII characters without spaces");
    }
    let accepted;
    try {
      // No body means every default; a body of `null` (or any non-object) is a mistake to report.
      if (req.body === null || (req.body !== undefined && (typeof req.body !== "object" || Array.isArray(req.body)))) {
        throw badRequest(
          `invalid dispatch request: the body must be a JSON object such as {"count": 1}, not ${req.body === null ? "null" : Array.isArray(req.body) ? "an array" : typeof req.body}; send no body for every default`,
        );
      }
      const body = parseInput(dispatchRequestSchema, req.body ?? {}, "dispatch request");
      accepted = await acceptDispatch(opts.accept, body, header);
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      const outcome =
        status === 403 ? "forbidden" : status === 409 ? "conflict" : status === 429 ? "queue_full" : status === 400 ? "invalid" : "error";
      count(req, outcome);
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
    let runners = accepted.runners;
    let waited: { for: string; complete: boolean } | undefined;
    if (query.wait) {
      // The connection is silent while we wait: keep http.connection_timeout from closing it.
      req.raw.socket?.setTimeout((query.timeout ?? 300_000) + 60_000);
      const target: readonly RunnerState[] = query.wait === "finished" ? TERMINAL_STATES : ["running", "finishing", ...TERMINAL_STATES];
      const result = await waitForRunners(ctx, accepted.dispatch.runnerNames, target, query.timeout ?? 300_000, req.raw);
      runners = result.runners;
      waited = { for: query.wait, complete: result.complete };
    }
    const body = {
      ...dispatchView(accepted.dispatch, runners),
      ...(waited
        ? {
            wait: waited,
            failed: runners.filter((r) => r.state === "failed").map((r) => ({ name: r.name, reason: r.reason })),
          }
        : {}),
    };
    return reply.status(accepted.status).send(body);
  });

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
      if (req.query.if_idle === "true" && r.state === "running") {
        // The autoscaler stops idle warm runners: look at Forgejo once more, right before, so a runner
        // that took a job since the autoscaler looked is left alone (the window shrinks to this call).
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
      // A launch in progress finishes in the background and destroys the instance it made (launch.ts).
      if (r.state === "pending" || r.state === "launching" || r.state === "running") {
        await finishRunner(ctx, r, { to: "failed", reason });
      }
      req.log.info({ runner: r.name, instance: r.instanceId }, `cancel requested: ${why}`);
      const latest = (await ctx.records.store.getRunner(r.name)) ?? r;
      return runnerView(latest, { history: true });
    },
  );

  app.get<{ Params: { id: string } }>("/api/v1/dispatches/:id", { onRequest: [opts.auth] }, async (req) => {
    const d = await ctx.records.store.getDispatch(req.params.id);
    if (!d) throw notFound(`no dispatch with id "${req.params.id}"`);
    const runners = await ctx.records.store.listRunners({ dispatchId: d.id });
    return { ...dispatchView(d, runners), runners: runners.map((r) => runnerView(r)) };
  });
}
