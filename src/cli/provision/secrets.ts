import { randomBytes } from "node:crypto";

/** 32 random bytes as base64url (43 characters): the dispatcher API token. */
export function newApiToken(): string {
  return randomBytes(32).toString("base64url");
}

/** 32 random bytes as hex (64 characters): the webhook HMAC secret, pasteable into Forgejo's form. */
export function newWebhookSecret(): string {
  return randomBytes(32).toString("hex");
}
