import { LogController } from "fastify";
import type { FastifyReply, FastifyRequest } from "fastify";

const READS = new Set(["GET", "HEAD"]);

/**
 * Successful reads are routine: the autoscaler polls the dispatcher (and Prometheus scrapes both
 * daemons) every few seconds, which buried everything else at info. Writes, and any answer of 400
 * or more, stay at info.
 */
export function requestLogLevel(method: string, status?: number): "debug" | "info" {
  if (!READS.has(method)) return "info";
  return status === undefined || status < 400 ? "debug" : "info";
}

/** Fastify's request log (the same lines and fields), with routine reads at debug. */
export class RequestLog extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log[requestLogLevel(request.method)]({ req: request }, "incoming request");
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (error) reply.log.error({ res: reply, err: error, responseTime: reply.elapsedTime }, "request errored");
    else reply.log[requestLogLevel(request.method, reply.statusCode)]({ res: reply, responseTime: reply.elapsedTime }, "request completed");
  }
}
