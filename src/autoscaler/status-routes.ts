import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { InstanceReconciler } from "./reconciler.js";
import type { AutoscalerStatus } from "./status.js";

export interface StatusRoutesOptions {
  reconcilers: readonly InstanceReconciler[];
  auth: (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
}

/** GET /api/v1/status: per instance what the server is, the mode, the last poll, targets and waiting jobs with reasons. */
export async function statusRoutes(app: FastifyInstance, opts: StatusRoutesOptions): Promise<void> {
  app.get("/api/v1/status", { onRequest: [opts.auth] }, async (): Promise<AutoscalerStatus> => ({
    instances: opts.reconcilers.map((r) => r.status()),
  }));
}
