import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import { storedHookEvents } from "./hook-events.js";
import { scopeKey } from "./scope.js";
import type { Scope } from "./scope.js";
import type { ForgejoApi, Hook, HookSpec } from "./types.js";

/** Events whose flags a PATCH never changes on Forgejo (docs/upstream-contracts.md#webhook-management). */
export const EVENTS_FIXED_AT_CREATION: readonly string[] = ["package", "action_run_success", "action_run_failure", "action_run_recover"];

/** The URL fragment key that records which secret a hook was created with. */
export const SECRET_MARKER = "forgejo-nsc-secret";

export type EnsureAction = "created" | "updated" | "recreated" | "unchanged";

export interface EnsureWebhookOptions {
  logger: Logger;
  /**
   * url-fragment (default): the hook URL carries "#forgejo-nsc-secret=<fingerprint>", so the
   * installed secret is known after a restart without any state. none: only
   * `previousSecretFingerprint` tells; without it the hook is recreated once.
   */
  secretMarker?: "url-fragment" | "none";
  /** Fingerprint (secretFingerprint()) of the secret installed last time, for hooks without a marker. */
  previousSecretFingerprint?: string | undefined;
  /** The forge's kind: what it stores for "pull_request" and friends differs (storedHookEvents). */
  kind?: "forgejo" | "gitea";
}

export interface EnsureWebhookResult {
  action: EnsureAction;
  hook: Hook;
  /** Persist this if you use secretMarker "none". */
  secretFingerprint: string;
  /** Other hooks with the same URL, deleted so each event arrives once. */
  removedDuplicates: number;
  /** Why the action was needed, for logs. */
  reason: string;
}

/**
 * A public, non-reversible tag of the secret: HMAC-SHA256 keyed with the secret over a fixed
 * label, first 16 hex digits. It tells "same secret or not" and nothing else; "none" for no secret.
 */
export function secretFingerprint(secret: string | undefined): string {
  if (!secret) return "none";
  return createHmac("sha256", secret).update("forgejo-nsc webhook secret fingerprint v1").digest("hex").slice(0, 16);
}

/** The URL without its fragment, normalised: what a delivery is actually sent to. */
export function deliveryUrl(url: string): string {
  try {
    const u = new URL(url);
    u.hash = "";
    return u.toString();
  } catch {
    return url.split("#")[0] ?? url;
  }
}

export function markedUrl(url: string, fingerprint: string): string {
  return `${deliveryUrl(url)}#${SECRET_MARKER}=${fingerprint}`;
}

export function markerOf(url: string): string | undefined {
  const i = url.indexOf("#");
  if (i < 0) return undefined;
  return new URLSearchParams(url.slice(i + 1)).get(SECRET_MARKER) ?? undefined;
}

/**
 * Makes the scope's webhook look like `desired` (level-triggered, safe to call on every start).
 * Ours is the hook whose delivery URL equals desired.url. Missing → created (active sent
 * explicitly). Present → PATCHed with the full desired state, unless something PATCH cannot
 * change differs — the secret (write-only, ignored on edit) or the package/action_run_* flags —
 * then a new hook is created first and the old one deleted, so no event window is lost (a duplicate
 * delivery in between is harmless: receivers dedupe).
 */
export async function ensureWebhook(
  api: ForgejoApi,
  scope: Scope,
  desired: HookSpec,
  opts: EnsureWebhookOptions,
): Promise<EnsureWebhookResult> {
  const useMarker = (opts.secretMarker ?? "url-fragment") === "url-fragment";
  const fingerprint = secretFingerprint(desired.secret);
  const target = deliveryUrl(desired.url);
  // Forgejo stores an empty event list as ["push"], "pull_request" as its sub-events, and so on:
  // compare against what it will hold, or every start would PATCH the hook.
  const events = desired.events.length ? desired.events : ["push"];
  const stored = storedHookEvents(opts.kind ?? "forgejo", events);
  const wanted: HookSpec = { ...desired, events, url: useMarker ? markedUrl(desired.url, fingerprint) : desired.url };
  const log = opts.logger.child({ scope: scopeKey(scope), webhook: target });

  const ours = (await api.listHooks(scope)).filter((h) => deliveryUrl(h.url) === target).sort((a, b) => a.id - b.id);
  const [keep, ...duplicates] = ours;
  const done = async (action: EnsureAction, hook: Hook, reason: string): Promise<EnsureWebhookResult> => {
    for (const d of duplicates) await api.deleteHook(scope, d.id);
    if (duplicates.length) log.warn({ removed: duplicates.map((d) => d.id) }, "deleted duplicate webhooks with the same URL");
    log[action === "unchanged" ? "debug" : "info"]({ action, hookId: hook.id, reason }, "webhook ensured");
    return { action, hook, secretFingerprint: fingerprint, removedDuplicates: duplicates.length, reason };
  };

  if (!keep) return done("created", await api.createHook(scope, wanted), "no webhook with this URL existed");

  const installed = (useMarker ? markerOf(keep.url) : undefined) ?? opts.previousSecretFingerprint;
  const recreateBecause =
    installed === undefined
      ? "the secret the webhook was created with is unknown (no marker in its URL), so it is recreated with the configured one"
      : installed !== fingerprint
        ? "the webhook secret changed, and Forgejo cannot change a secret in place"
        : !sameSet(fixedEvents(keep.events), fixedEvents(stored))
          ? `the ${EVENTS_FIXED_AT_CREATION.join("/")} events changed, which Forgejo cannot change in place`
          : keep.type !== "forgejo" && keep.type !== "gitea"
            ? `the webhook has type ${JSON.stringify(keep.type)}, not a raw JSON one`
            : undefined;
  if (recreateBecause) {
    const created = await api.createHook(scope, wanted);
    await api.deleteHook(scope, keep.id);
    return done("recreated", created, recreateBecause);
  }

  const differences: string[] = [];
  if (keep.url !== wanted.url) differences.push("url");
  if (!sameSet(keep.events, stored)) differences.push("events");
  if (keep.content_type !== undefined && keep.content_type !== desired.content_type) differences.push("content_type");
  if (keep.active !== desired.active) differences.push("active");
  if (differences.length === 0) return done("unchanged", keep, "the webhook already matches");
  return done("updated", await api.editHook(scope, keep.id, wanted), `changed: ${differences.join(", ")}`);
}

function fixedEvents(events: readonly string[]): string[] {
  return events.filter((e) => EVENTS_FIXED_AT_CREATION.includes(e));
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}
