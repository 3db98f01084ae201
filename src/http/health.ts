import type { FastifyInstance } from "fastify";
import { errorMessage } from "../shared/error-message.js";
import type { Metrics } from "./metrics.js";

export interface ReadinessCheck {
  name: string;
  check: () => Promise<string | undefined> | string | undefined;
}

/**
 * /healthz: the process is alive. /readyz: every check passes (a check returns a problem, or
 * undefined when fine). /metrics: Prometheus text, optionally behind the API's auth.
 */
export function registerHealth(
  app: FastifyInstance,
  opts: {
    checks: ReadinessCheck[];
    metrics: Metrics;
    metricsAuth?: ((req: never, reply: never) => Promise<void>) | undefined;
    /** More of what this process is doing, in the /readyz body (which replica acts). */
    details?: () => Record<string, unknown>;
  },
): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const problems: Record<string, string> = {};
    for (const c of opts.checks) {
      try {
        const p = await c.check();
        if (p) problems[c.name] = p;
      } catch (err) {
        problems[c.name] = errorMessage(err);
      }
    }
    const ready = Object.keys(problems).length === 0;
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", problems, ...opts.details?.() });
  });
  app.get("/metrics", { onRequest: opts.metricsAuth ? [opts.metricsAuth as never] : [] }, async (_req, reply) => {
    reply.header("content-type", opts.metrics.registry.contentType);
    return opts.metrics.registry.metrics();
  });
}
