import type { WorkflowJobEvent } from "./reconciler-hints.js";

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

const first = (v: string | readonly string[] | undefined) => (Array.isArray(v) ? v[0] : (v as string | undefined));

/** The event family of a delivery: X-Forgejo-Event, X-Gitea-Event, X-GitHub-Event or X-Gogs-Event. */
export function deliveryEvent(headers: Headers): string {
  for (const h of ["x-forgejo-event", "x-gitea-event", "x-github-event", "x-gogs-event"]) {
    const v = first(headers[h])?.trim();
    if (v) return v;
  }
  return "unknown";
}

export function deliveryId(headers: Headers): string | undefined {
  for (const h of ["x-forgejo-delivery", "x-gitea-delivery", "x-github-delivery", "x-gogs-delivery"]) {
    const v = first(headers[h])?.trim();
    if (v) return v;
  }
  return undefined;
}

/**
 * The bytes the signature covers. For content_type json that is the body; for form the body is
 * `payload=<url-encoded JSON>` and the signature covers the JSON
 * (docs/upstream-contracts.md#webhook-deliveries).
 */
export function signedPayload(raw: Buffer, contentType: string | undefined): Buffer {
  if (contentType && /^application\/x-www-form-urlencoded\b/i.test(contentType)) {
    const payload = new URLSearchParams(raw.toString("utf8")).get("payload");
    return Buffer.from(payload ?? "", "utf8");
  }
  return raw;
}

/**
 * Reads Gitea's workflow_job payload (docs/upstream-contracts.md#gitea-differences); undefined
 * when the fields are not there.
 */
export function parseWorkflowJob(payload: Record<string, unknown>): WorkflowJobEvent | undefined {
  const wj = payload.workflow_job as Record<string, unknown> | undefined;
  if (!wj || typeof wj !== "object") return undefined;
  const action = typeof payload.action === "string" ? payload.action : typeof wj.status === "string" ? wj.status : undefined;
  const id = wj.id;
  if (!action || typeof id !== "number" || !Number.isInteger(id)) return undefined;
  const labels = Array.isArray(wj.labels) ? wj.labels.filter((l): l is string => typeof l === "string") : [];
  const attempt = typeof wj.run_attempt === "number" ? wj.run_attempt : undefined;
  return { action, id, attempt, labels };
}
