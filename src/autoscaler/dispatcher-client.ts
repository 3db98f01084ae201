import { request } from "undici";
import { RUNNER_LIST_MAX_LIMIT } from "../api/runner-view.js";
import type { Metrics } from "../http/metrics.js";
import { dispatchResponseSchema, runnerListSchema } from "./dispatcher-types.js";
import type { DispatchBody, DispatchOutcome, DispatcherRunner } from "./dispatcher-types.js";

export interface DispatcherClientOptions {
  url: string;
  timeoutMs: number;
  token?: string | undefined;
  metrics?: Metrics | undefined;
}

/** The dispatcher could not be asked (network, timeout, 5xx, unreadable answer). Never holds the token. */
export class DispatcherUnavailableError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "DispatcherUnavailableError";
  }
}

/** The autoscaler's side of the dispatcher API: POST /api/v1/dispatch, GET /api/v1/runners and DELETE /api/v1/runners/{name}. */
export class DispatcherClient {
  private readonly base: string;

  constructor(private readonly opts: DispatcherClientOptions) {
    this.base = opts.url.replace(/\/+$/, "");
  }

  get url(): string {
    return this.base;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json", ...extra };
    if (this.opts.token) h.authorization = `Bearer ${this.opts.token}`;
    return h;
  }

  private describeFailure(err: unknown): string {
    const e = err as { code?: string; name?: string };
    if (
      e?.name === "TimeoutError" ||
      e?.code === "UND_ERR_HEADERS_TIMEOUT" ||
      e?.code === "UND_ERR_BODY_TIMEOUT" ||
      e?.name === "AbortError"
    ) {
      return `the dispatcher at ${this.base} did not answer within ${this.opts.timeoutMs} ms; check that it is running or raise dispatcher.timeout`;
    }
    const code = e?.code ? ` (${e.code})` : "";
    return `cannot reach the dispatcher at ${this.base}${code}; check dispatcher.url and that the dispatcher is running`;
  }

  /** Asks for runners under an idempotency key. Never throws for HTTP answers; network trouble is "unavailable". */
  async dispatch(body: DispatchBody, key: string): Promise<DispatchOutcome> {
    let res;
    try {
      res = await request(`${this.base}/api/v1/dispatch`, {
        method: "POST",
        headers: this.headers({ "content-type": "application/json", "idempotency-key": key }),
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      this.count("unreachable");
      return { kind: "unavailable", status: 0, message: this.describeFailure(err) };
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      this.count("unreachable");
      return { kind: "unavailable", status: res.statusCode, message: this.describeFailure(err) };
    }
    const status = res.statusCode;
    if (status === 202 || status === 200) {
      const parsed = dispatchResponseSchema.safeParse(safeJson(text));
      if (!parsed.success) {
        this.count("bad_response");
        return {
          kind: "unavailable",
          status,
          message: `the dispatcher at ${this.base} answered ${status} with a body that is not a dispatch response; is dispatcher.url pointing at forgejo-nsc-dispatcher?`,
        };
      }
      this.count(status === 202 ? "created" : "duplicate");
      return { kind: status === 202 ? "created" : "duplicate", response: parsed.data };
    }
    const message = answerMessage(text);
    if (status === 429 || status >= 500) {
      this.count(status === 429 ? "queue_full" : "server_error");
      const retryAfter = Number(res.headers["retry-after"]);
      return {
        kind: "unavailable",
        status,
        message: status === 429 ? `dispatcher queue is full: ${message}` : `dispatcher error ${status}: ${message}`,
        retryAfterMs: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : undefined,
      };
    }
    this.count(status === 401 ? "unauthorized" : status === 403 ? "forbidden" : status === 409 ? "conflict" : "invalid");
    const hint =
      status === 401
        ? " (set dispatcher.token or dispatcher.token_file to one of the dispatcher's auth.tokens)"
        : status === 403
          ? " (the dispatcher's namespace.allow_labels / allow_scopes do not allow this target)"
          : status === 409
            ? " (the idempotency key was used before with a different request; the target's settings changed since)"
            : "";
    return { kind: "rejected", status, message: `dispatcher refused the request (${status}): ${message}${hint}` };
  }

  /** Runners the dispatcher has in the given states for one scope. Throws DispatcherUnavailableError. */
  async listRunners(opts: { states: readonly string[]; scopeKey?: string | undefined }): Promise<DispatcherRunner[]> {
    // The dispatcher answers 500 runners unless told otherwise; a cut list would look like free room.
    const q = new URLSearchParams({ state: opts.states.join(","), limit: String(RUNNER_LIST_MAX_LIMIT) });
    if (opts.scopeKey) q.set("scope", opts.scopeKey);
    let res;
    try {
      res = await request(`${this.base}/api/v1/runners?${q.toString()}`, {
        method: "GET",
        headers: this.headers(),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      this.count("unreachable");
      throw new DispatcherUnavailableError(this.describeFailure(err), 0);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new DispatcherUnavailableError(this.describeFailure(err), res.statusCode);
    }
    if (res.statusCode !== 200) {
      this.count(res.statusCode === 401 ? "unauthorized" : "list_error");
      const hint = res.statusCode === 401 ? "; set dispatcher.token or dispatcher.token_file to one of the dispatcher's auth.tokens" : "";
      throw new DispatcherUnavailableError(
        `listing runners at the dispatcher failed with ${res.statusCode}: ${answerMessage(text)}${hint}`,
        res.statusCode,
      );
    }
    const parsed = runnerListSchema.safeParse(safeJson(text));
    if (!parsed.success) {
      throw new DispatcherUnavailableError(
        `the dispatcher at ${this.base} answered GET /api/v1/runners with an unexpected body; is dispatcher.url pointing at forgejo-nsc-dispatcher?`,
        200,
      );
    }
    this.count("listed");
    return parsed.data.runners;
  }

  /**
   * Stops one runner (DELETE /api/v1/runners/{name}): the dispatcher destroys its instance and
   * deletes its registration. A runner the dispatcher no longer knows is gone already. Never throws.
   */
  async cancel(
    name: string,
    reason: string,
    opts: { ifIdle?: boolean } = {},
  ): Promise<{ ok: true } | { ok: false; busy?: boolean; message: string }> {
    const q = new URLSearchParams({ reason: reason.slice(0, 200) });
    // if_idle: the dispatcher asks Forgejo once more and leaves a runner that took a job since (409).
    if (opts.ifIdle) q.set("if_idle", "true");
    let res;
    try {
      res = await request(`${this.base}/api/v1/runners/${encodeURIComponent(name)}?${q.toString()}`, {
        method: "DELETE",
        headers: this.headers(),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      this.count("unreachable");
      return { ok: false, message: this.describeFailure(err) };
    }
    let text = "";
    try {
      text = await res.body.text();
    } catch {
      // The status says enough.
    }
    if (res.statusCode === 200 || res.statusCode === 404) {
      this.count("cancelled");
      return { ok: true };
    }
    if (res.statusCode === 409 && opts.ifIdle) {
      this.count("cancel_busy");
      return { ok: false, busy: true, message: `runner ${name} took a job before it could be stopped; it stays` };
    }
    this.count(res.statusCode === 401 ? "unauthorized" : "cancel_error");
    const hint =
      res.statusCode === 401
        ? "; set dispatcher.token or dispatcher.token_file to one of the dispatcher's auth.tokens"
        : "; the runner is left running and the next pass tries again";
    return { ok: false, message: `stopping runner ${name} at the dispatcher failed with ${res.statusCode}: ${answerMessage(text)}${hint}` };
  }

  private count(outcome: string): void {
    this.opts.metrics?.dispatcherCalls.inc({ outcome });
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The dispatcher's own `message` (it never contains our token), cut short. */
function answerMessage(text: string): string {
  const body = safeJson(text) as { message?: unknown; error?: unknown } | undefined;
  const msg = typeof body?.message === "string" ? body.message : typeof body?.error === "string" ? body.error : text;
  return msg.replace(/\s+/g, " ").slice(0, 300) || "(empty answer)";
}
