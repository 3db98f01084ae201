import type { FastifyError, FastifyInstance } from "fastify";
import { verifyWebhookSignature } from "../forgejo/webhook-signature.js";
import { HttpError } from "../http/errors.js";
import type { Metrics } from "../http/metrics.js";
import type { InstanceReconciler } from "./reconciler.js";
import { deliveryEvent, deliveryId, parseWorkflowJob, signedPayload } from "./webhook-payload.js";

export interface WebhookInstance {
  reconciler: InstanceReconciler;
  /** The configured webhook secret; deliveries must be signed with it when set. */
  secret?: string | undefined;
}

export interface WebhookRoutesOptions {
  instances: ReadonlyMap<string, WebhookInstance>;
  metrics: Metrics;
  bodyLimit: number;
}

/**
 * POST /webhook/:name. The body is kept as raw bytes so the HMAC is checked over exactly what was
 * signed, then parsed. The answer (202) goes out before any work: the delivery only tells the
 * instance's reconciler to look again (now, for a Gitea workflow_job "queued").
 */
export async function webhookRoutes(app: FastifyInstance, opts: WebhookRoutesOptions): Promise<void> {
  const { metrics } = opts;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: opts.bodyLimit }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    const instance = opts.instances.has((req.params as { name?: string })?.name ?? "") ? (req.params as { name: string }).name : "unknown";
    if (err instanceof HttpError) {
      return reply.status(err.statusCode).send({ error: err.code, message: err.message });
    }
    if (err.statusCode === 413) {
      metrics.webhookDeliveries.inc({ forge: instance, result: "too_large" });
      return reply.status(413).send({
        error: "body_too_large",
        message: `webhook delivery is larger than the limit of ${opts.bodyLimit} bytes; raise webhooks.body_limit if this delivery is legitimate`,
      });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, "webhook handling failed");
    return reply.status(status).send({
      error: status === 500 ? "internal" : "invalid_request",
      message: status === 500 ? "internal error; the autoscaler log has the details" : err.message,
    });
  });

  app.post<{ Params: { name: string } }>("/webhook/:name", { bodyLimit: opts.bodyLimit }, async (req, reply) => {
    const inst = opts.instances.get(req.params.name);
    if (!inst) {
      metrics.webhookDeliveries.inc({ forge: "unknown", result: "unknown_instance" });
      throw new HttpError(
        404,
        "unknown_instance",
        "no instance with this name is configured; deliver to /webhook/<instances[].name> of the autoscaler config",
      );
    }
    const name = inst.reconciler.name;
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const payloadBytes = signedPayload(raw, req.headers["content-type"]);

    if (inst.secret) {
      const check = verifyWebhookSignature(payloadBytes, req.headers, inst.secret);
      if (!check.ok) {
        metrics.webhookDeliveries.inc({ forge: name, result: "bad_signature" });
        req.log.warn(
          { instance: name, reason: check.reason, delivery: deliveryId(req.headers) },
          "webhook delivery rejected: bad signature",
        );
        const message =
          check.reason === "missing"
            ? "the delivery carries no signature: set the webhook's secret in Forgejo to this instance's webhook_secret"
            : "the signature does not match: the webhook's secret in Forgejo differs from this instance's webhook_secret";
        throw new HttpError(401, "bad_signature", message);
      }
    }

    let payload: unknown;
    try {
      payload = JSON.parse(payloadBytes.toString("utf8"));
    } catch {
      payload = undefined;
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      metrics.webhookDeliveries.inc({ forge: name, result: "malformed" });
      throw new HttpError(400, "malformed", "the delivery is not a JSON object; configure the webhook with content type json (or form)");
    }

    const event = deliveryEvent(req.headers);
    metrics.webhookDeliveries.inc({ forge: name, result: "accepted" });
    const delivery = deliveryId(req.headers);
    const wj = event === "workflow_job" ? parseWorkflowJob(payload as Record<string, unknown>) : undefined;
    req.log.info({ instance: name, event, delivery, job: wj?.id, action: wj?.action }, "webhook delivery accepted");

    // Work happens after the answer: the sender only waits for the 202.
    setImmediate(() => {
      if (wj) inst.reconciler.onWorkflowJob(wj);
      else inst.reconciler.onDelivery(event);
    });
    return reply.status(202).send({ status: "accepted", instance: name, event });
  });
}
