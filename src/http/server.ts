import { randomUUID } from "node:crypto";
import Fastify from "fastify";
import type { FastifyInstance, FastifyError } from "fastify";
import type { Logger } from "pino";
import type { z } from "zod";
import { formatIssues } from "../config/load.js";
import { HttpError, badRequest } from "./errors.js";
import { RequestLog } from "./request-log.js";

export interface ServerOptions {
  logger: Logger;
  bodyLimit: number;
  trustProxy: boolean | number | string | string[];
}

/** Fastify with our logging, request ids, body limit and one error handler for every route. */
export function createServer(opts: ServerOptions): FastifyInstance {
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
  }) as unknown as FastifyInstance;

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
      return reply.status(413).send({ error: "body_too_large", message: `request body is larger than the limit of ${opts.bodyLimit} bytes` });
    }
    if (status === 415) {
      return reply.status(415).send({ error: "unsupported_media_type", message: "send the body as application/json" });
    }
    if (status >= 400 && status < 500) {
      // Fastify's own parse errors (malformed JSON, empty body): say what to fix.
      return reply.status(status).send({ error: "invalid_request", message: err.message });
    }
    req.log.error({ err }, "request failed");
    return reply.status(500).send({ error: "internal", message: "internal error; the dispatcher log has the details under this request id", request_id: req.id });
  });

  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({ error: "not_found", message: `no route for ${req.method} ${req.url.split("?")[0]}` });
  });
  return app;
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
