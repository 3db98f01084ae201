import type { Logger } from "pino";
import type { WebhookConfig } from "../config/autoscaler-schema.js";
import type { Scope } from "../forgejo/scope.js";
import { scopeKey } from "../forgejo/scope.js";
import { ensureWebhook } from "../forgejo/hooks.js";
import type { ForgejoApi, HookSpec, ServerInfo } from "../forgejo/types.js";
import { errorMessage } from "../shared/error-message.js";

/**
 * Deliveries that make the autoscaler look again. Forgejo has no job-level event
 * (docs/upstream-contracts.md#webhook-deliveries).
 */
export const FORGEJO_DEFAULT_EVENTS = ["push", "pull_request", "action_run_success", "action_run_failure", "action_run_recover"];
/** Gitea >= 1.24 announces every job (docs/upstream-contracts.md#gitea-differences). */
export const GITEA_DEFAULT_EVENTS = ["workflow_job"];

/** The hook the instance should have, given what the server is. */
export function desiredHook(cfg: WebhookConfig, secret: string | undefined, info: ServerInfo): HookSpec {
  const events = cfg.events ?? (info.kind === "gitea" ? GITEA_DEFAULT_EVENTS : FORGEJO_DEFAULT_EVENTS);
  return { url: cfg.url, content_type: cfg.content_type, events: [...events], active: cfg.active, secret };
}

/** Problems worth a warning about the configured events, for the server at hand. */
export function webhookWarnings(cfg: WebhookConfig, info: ServerInfo): string[] {
  const events = cfg.events ?? [];
  const out: string[] = [];
  if (info.kind === "forgejo" && events.includes("workflow_job")) {
    out.push(
      "webhook.events lists workflow_job, which Forgejo never sends (it has no job-level webhook); the autoscaler keeps polling, and deliveries of the other events only make it look sooner",
    );
  }
  if (info.kind === "gitea" && cfg.events && !events.includes("workflow_job")) {
    out.push("webhook.events does not list workflow_job: Gitea will not announce queued jobs, so the autoscaler keeps polling");
  }
  return out;
}

/** Creates or updates the hook; returns what was done, in words. */
export type EnsureWebhook = (api: ForgejoApi, scope: Scope, desired: HookSpec, logger: Logger) => Promise<string>;

/**
 * src/forgejo/hooks.ts's ensureWebhook with its default secret marker (a URL fragment), so a
 * changed webhook_secret is noticed after a restart without any local state.
 */
export const ensureConfiguredWebhook: EnsureWebhook = async (api, scope, desired, logger) => {
  const r = await ensureWebhook(api, scope, desired, { logger, kind: (await api.serverInfo()).kind });
  return `${r.action} (${r.reason})`;
};

export interface WebhookSetupOptions {
  instance: string;
  api: ForgejoApi;
  scope: Scope;
  config: WebhookConfig;
  secret?: string | undefined;
  info: () => Promise<ServerInfo>;
  ensure: EnsureWebhook;
  logger: Logger;
  onState: (state: "ok" | "pending" | "error", message: string | null) => void;
  retry?: { first: number; max: number };
}

/**
 * Creates or updates the configured webhook once the server is known, retrying in the background
 * (with backoff) while Forgejo is unreachable or refuses; the daemon never exits over it.
 */
export function startWebhookSetup(opts: WebhookSetupOptions): { stop: () => void; done: Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let onStop!: () => void;
  const stopSignal = new Promise<undefined>((resolve) => {
    onStop = () => resolve(undefined);
  });
  const first = opts.retry?.first ?? 2000;
  const max = opts.retry?.max ?? 300_000;
  const log = opts.logger.child({ instance: opts.instance });

  const done = (async () => {
    let info: ServerInfo | undefined;
    try {
      info = await Promise.race([opts.info(), stopSignal]);
    } catch {
      return;
    }
    if (!info || stopped) return;
    for (const w of webhookWarnings(opts.config, info)) log.warn(w);
    const desired = desiredHook(opts.config, opts.secret, info);
    let delay = first;
    while (!stopped) {
      try {
        const outcome = await opts.ensure(opts.api, opts.scope, desired, log);
        log.info({ url: desired.url, events: desired.events, scope: scopeKey(opts.scope), outcome }, "webhook in place");
        opts.onState("ok", `${outcome}: ${desired.url} for ${desired.events.join(", ")}`);
        return;
      } catch (err) {
        const message = errorMessage(err);
        opts.onState("error", `${message} (retrying in ${Math.round(delay / 1000)}s)`);
        log.warn({ err: message, retryInMs: delay }, "could not set up the webhook; retrying in the background");
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, delay);
      });
      delay = Math.min(delay * 2, max);
    }
  })();

  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      onStop();
    },
    done,
  };
}
