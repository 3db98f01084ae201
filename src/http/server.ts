import { randomUUID } from "node:crypto";
import Fastify from "fastify";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { z } from "zod";
import { formatIssues } from "../config/load.js";
import type { DaemonName } from "./daemon.js";
import { HttpError, badRequest } from "./errors.js";
import { RequestLog } from "./request-log.js";

/** The connection limits of `http` in both daemons' configs (common.ts), in milliseconds. */
export interface ConnectionLimits {
  headers_timeout: number;
  request_timeout: number;
  connection_timeout: number;
  keep_alive_timeout: number;
  max_connections: number;
}

export interface ServerOptions {
  /** Named in the 500 answer: the log that has the details. */
  daemon: DaemonName;
  logger: Logger;
  bodyLimit: number;
  trustProxy: boolean | number | string | string[];
  limits: ConnectionLimits;
}

/**
 * Fastify with our logging, request ids, body limit, connection limits and one error handler for
 * every route. The limits keep a flood of slow or idle connections from using up the process's
 * file descriptors: each connection must deliver its headers and request in time, idle ones are
 * closed, and beyond max_connections new ones are closed at once.
 */
export function createServer(opts: ServerOptions): FastifyInstance {
  const { limits } = opts;
  const app = Fastify({
    loggerInstance: opts.logger,
    // Routine reads are logged at debug.
    logController: new RequestLog(),
    bodyLimit: opts.bodyLimit,
    // A hop count is a number for proxy-addr; Fastify's types only list the other forms.
    trustProxy: opts.trustProxy as boolean | string | string[],
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    requestTimeout: limits.request_timeout,
    connectionTimeout: limits.connection_timeout,
    keepAliveTimeout: limits.keep_alive_timeout,
    http: {
      headersTimeout: limits.headers_timeout,
      requestTimeout: limits.request_timeout,
      // Node looks for expired headers/requests on this interval (30 s by default).
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(limits.headers_timeout / 4))),
    },
  }) as unknown as FastifyInstance;
  app.server.maxConnections = limits.max_connections;

  // JSON only: a text/plain body should be told so (415), not half-parsed.
  app.removeContentTypeParser("text/plain");
  app.addHook("onSend", async (req, reply) => {
    reply.header("x-request-id", req.id);
  });

  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    if (err instanceof HttpError) {
      if (err.headers) reply.headers(err.headers);
      const body: Record<string, unknown> = { error: err.code, message: err.message };
      if (err.details !== undefined) body.details = err.details;
      return reply.status(err.statusCode).send(body);
    }
    const status = err.statusCode ?? 500;
    if (status === 413) {
      return reply
        .status(413)
        .send({ error: "body_too_large", message: `request body is larger than the limit of ${opts.bodyLimit} bytes` });
    }
    if (status === 415) {
      return reply.status(415).send({ error: "unsupported_media_type", message: "send the body as application/json" });
    }
    if (status >= 400 && status < 500) {
      // Fastify's own parse errors (malformed JSON, empty body): say what to fix.
      return reply.status(status).send({ error: "invalid_request", message: err.message });
    }
    req.log.error({ err }, "request failed");
    return reply.status(500).send({ error: "internal", message: internalErrorMessage(opts.daemon), request_id: req.id });
  });

  const notFound = (req: FastifyRequest, reply: FastifyReply) =>
    reply.status(404).send({ error: "not_found", message: `no route for ${req.method} ${req.url.split("?")[0]}` });
  // Answered before any body is read, and the connection closed: an unrouted request cannot hold it.
  app.addHook("onRequest", async (req, reply) => {
    if (req.is404) return notFound(req, reply.header("connection", "close"));
  });
  app.setNotFoundHandler(notFound);
  return app;
}

/** The 500 answer's message: where the details are. */
export function internalErrorMessage(daemon: DaemonName): string {
  return `internal error; the ${daemon} log has the details under this request id`;
}

/** Validates input at the edge; a failure is a 400 listing every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) {
    // A problem's path can hold a client's own key (env.<key>): never echo a huge one back in full.
    const problems = formatIssues(r.error.issues).map((p) => (p.length > 300 ? `${p.slice(0, 300)}…` : p));
    throw badRequest(`invalid ${what}: ${problems.join("; ")}`, { problems });
  }
  return r.data;
}
