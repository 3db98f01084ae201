import { createHmac, timingSafeEqual } from "node:crypto";

/** Node's IncomingHttpHeaders and plain records both fit. */
export type WebhookHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

export type SignatureCheck = { ok: true; header: string } | { ok: false; reason: "missing" | "mismatch" | "malformed" };

/** Lowercase hex HMAC-SHA256 of the exact body bytes: what Forgejo and Gitea put in X-Forgejo-Signature. */
export function signWebhookBody(body: Buffer | string, secret: string): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

/**
 * Checks a delivery against the webhook secret (docs/upstream-contracts.md#webhook-deliveries).
 * Accepts, in this order, X-Forgejo-Signature, X-Gitea-Signature (bare hex) and
 * X-Hub-Signature-256 ("sha256=" hex); the first one with a value decides. Deliveries from a hook
 * without a secret carry the headers empty, which counts as missing. The comparison is constant
 * time over the decoded digests; a digest of the wrong length is a mismatch, never an exception.
 */
export function verifyWebhookSignature(rawBody: Buffer, headers: WebhookHeaders, secret: string): SignatureCheck {
  if (!secret) throw new Error("webhook secret is empty: configure webhook_secret (or webhook_secret_file) for this instance");
  const given = pickSignature(headers);
  if (!given) return { ok: false, reason: "missing" };
  let hex = given.value;
  if (given.header === "x-hub-signature-256") {
    if (!hex.toLowerCase().startsWith("sha256=")) return { ok: false, reason: "malformed" };
    hex = hex.slice("sha256=".length);
  }
  if (!/^[0-9a-fA-F]*$/.test(hex)) return { ok: false, reason: "malformed" };
  const expected = createHmac("sha256", secret).update(rawBody).digest();
  // Hex of the wrong length cannot match; compare something of the right length anyway so every
  // rejection takes the same path.
  const actual = hex.length === expected.length * 2 ? Buffer.from(hex, "hex") : Buffer.alloc(expected.length);
  const equal = timingSafeEqual(actual, expected);
  return equal && hex.length === expected.length * 2 ? { ok: true, header: given.header } : { ok: false, reason: "mismatch" };
}

const SIGNATURE_HEADERS = ["x-forgejo-signature", "x-gitea-signature", "x-hub-signature-256"] as const;

function pickSignature(headers: WebhookHeaders): { header: (typeof SIGNATURE_HEADERS)[number]; value: string } | undefined {
  const lower = new Map<string, string | readonly string[] | undefined>();
  for (const [k, v] of Object.entries(headers)) lower.set(k.toLowerCase(), v);
  for (const header of SIGNATURE_HEADERS) {
    const raw = lower.get(header);
    const value = (Array.isArray(raw) ? raw[0] : raw) as string | undefined;
    const v = value?.trim() ?? "";
    // A hook without a secret still sends the headers, empty ("sha256=" for the GitHub form).
    if (v === "" || (header === "x-hub-signature-256" && v.toLowerCase() === "sha256=")) continue;
    return { header, value: v };
  }
  return undefined;
}
