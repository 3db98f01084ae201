import { createHmac, randomUUID } from "node:crypto";
import { request } from "undici";
import type { FakeDelivery, FakeKind } from "./model.js";

export interface DeliverOptions {
  /** The hook secret; empty/absent → signature headers present but empty, as Forgejo does. */
  secret?: string;
  contentType?: "json" | "form";
  /** Exact event type (…-Event-Type); defaults to the event. */
  eventType?: string;
  authorizationHeader?: string;
  /** Gitea's X-Gitea-Hook-Installation-Target-Type: repository, organization, user, system, default. */
  targetType?: string;
  hookId?: number;
  timeoutMs?: number;
}

/**
 * The exact request Forgejo's (or Gitea's) raw-JSON webhook sends (contracts/forgejo-api.md §7.2):
 * the payload pretty-printed with two spaces, signatures over those JSON bytes (also for form hooks),
 * and the X-Forgejo-/X-Gitea-/X-Gogs-/X-GitHub- header family. Signatures are computed here with
 * node:crypto, independently of src/forgejo/webhook-signature.ts.
 */
export function buildDelivery(
  kind: FakeKind,
  event: string,
  payload: unknown,
  opts: DeliverOptions = {},
): { headers: Record<string, string>; body: string; json: string } {
  const json = JSON.stringify(payload, null, 2);
  const secret = opts.secret ?? "";
  const sha256 = secret ? createHmac("sha256", secret).update(json).digest("hex") : "";
  const sha1 = secret ? createHmac("sha1", secret).update(json).digest("hex") : "";
  const id = randomUUID();
  const eventType = opts.eventType ?? event;
  const families = kind === "forgejo" ? ["Forgejo", "Gitea", "Gogs", "GitHub"] : ["Gitea", "Gogs", "GitHub"];
  const headers: Record<string, string> = {};
  for (const f of families) {
    headers[`X-${f}-Delivery`] = id;
    headers[`X-${f}-Event`] = event;
    headers[`X-${f}-Event-Type`] = eventType;
    if (f !== "GitHub") headers[`X-${f}-Signature`] = sha256;
  }
  headers["X-Hub-Signature"] = `sha1=${sha1}`;
  headers["X-Hub-Signature-256"] = `sha256=${sha256}`;
  if (kind === "gitea") {
    headers["X-Gitea-Hook-Installation-Target-Type"] = opts.targetType ?? "repository";
    headers["X-GitHub-Hook-Installation-Target-Type"] = opts.targetType ?? "repository";
  }
  const form = opts.contentType === "form";
  headers["Content-Type"] = form ? "application/x-www-form-urlencoded" : "application/json";
  if (opts.authorizationHeader) headers["Authorization"] = opts.authorizationHeader;
  const body = form ? new URLSearchParams({ payload: json }).toString() : json;
  return { headers, body, json };
}

/** POSTs one delivery. Like Go's HTTP client, the URL fragment is never sent. */
export async function sendDelivery(
  kind: FakeKind,
  url: string,
  event: string,
  payload: unknown,
  opts: DeliverOptions = {},
): Promise<FakeDelivery> {
  const { headers, body } = buildDelivery(kind, event, payload, opts);
  const target = new URL(url);
  target.hash = "";
  const record: FakeDelivery = { hookId: opts.hookId, url, event, eventType: opts.eventType ?? event, headers, body };
  try {
    const res = await request(target, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
    });
    await res.body.dump();
    record.status = res.statusCode;
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
  }
  return record;
}
