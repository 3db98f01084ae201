import { readFile } from "node:fs/promises";
import { request } from "undici";
import type { z } from "zod";
import type { Logger } from "../http/logger.js";
import type { Metrics } from "../http/metrics.js";
import {
  CONNECT_CODES,
  connectErrorSchema,
  describeInstanceResponseSchema,
  emptyResponseSchema,
  listInstancesResponseSchema,
} from "./compute-types.js";
import type {
  ConnectCode,
  CreateInstanceRequest,
  DescribeInstanceResponse,
  InstanceMetadata,
  ListInstancesRequest,
} from "./compute-types.js";

export const COMPUTE_SERVICE = "namespace.cloud.compute.v1beta.ComputeService";
/** The official SDKs' default region; nsc differs (see docs/platforms.md), so set namespace.region. */
export const DEFAULT_COMPUTE_REGION = "us";

/** Error codes beyond Connect's: the call never got a Connect answer. */
export type ComputeErrorCode = ConnectCode | "network" | "timeout" | "bad_response" | "token";

const HINTS: Partial<Record<ComputeErrorCode, string>> = {
  unauthenticated:
    'check namespace.token_file: it must hold {"bearer_token": "…"} with a valid, unexpired token (create one with `nsc token create … --token_file <path>`)',
  token: 'check namespace.token_file: it must hold {"bearer_token": "…"} (create one with `nsc token create … --token_file <path>`)',
  permission_denied: "the Namespace token lacks permission for compute instances; create a token whose grant covers instances",
  resource_exhausted:
    "Namespace has no capacity for this shape right now; retry later or choose a smaller namespace.macos_machine_type (macOS) or machine type (Linux: namespace.machine_type or the request's)",
  invalid_argument:
    "Namespace rejected the request; for macOS check namespace.macos_machine_type (shape), namespace.macos_base_image_id (selectors) and namespace.macos_cache_*; for Linux namespace.machine_type, namespace.image and namespace.linux_cache_*",
  failed_precondition: "Namespace refused the request in the instance's current state",
  not_found: "the instance no longer exists",
  unavailable: "the Compute API is temporarily unavailable; it is retried",
  deadline_exceeded: "the Compute API did not answer in time; it is retried",
  timeout: "the Compute API did not answer in time; it is retried",
  network: "could not reach the Compute API; check namespace.compute_base_url / namespace.region and the network",
  bad_response: "the Compute API answered with something this version does not understand",
};

/** A failed Compute API call, switched on the Connect `code`. Never carries the bearer token. */
export class ComputeApiError extends Error {
  readonly hint: string;
  constructor(
    readonly method: string,
    readonly code: ComputeErrorCode,
    readonly serverMessage: string,
    readonly httpStatus?: number,
  ) {
    const hint = HINTS[code] ?? "unexpected error from the Compute API";
    super(
      `Namespace Compute API ${method} failed (${code}${httpStatus ? `, HTTP ${httpStatus}` : ""}): ${serverMessage || "no message"}; ${hint}`,
    );
    this.name = "ComputeApiError";
    this.hint = hint;
  }
}

/** Connect's mapping for an HTTP error that carries no Connect error body. */
function codeFromHttpStatus(status: number): ConnectCode {
  switch (status) {
    case 400:
      return "internal";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "unimplemented";
    case 429:
    case 502:
    case 503:
    case 504:
      return "unavailable";
    default:
      return "unknown";
  }
}

function isConnectCode(code: string): code is ConnectCode {
  return (CONNECT_CODES as readonly string[]).includes(code);
}

/**
 * The Compute API base URL: `namespace.compute_base_url`, else `https://<region>.compute.namespaceapis.com`
 * for `namespace.region`, else `NSC_ENDPOINT` (what nsc itself honours), else the `us` region.
 */
export function computeBaseUrl(
  ns: { compute_base_url?: string | undefined; region?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): string {
  const raw =
    ns.compute_base_url ??
    (ns.region
      ? `https://${ns.region}.compute.namespaceapis.com`
      : env.NSC_ENDPOINT || `https://${DEFAULT_COMPUTE_REGION}.compute.namespaceapis.com`);
  return raw.replace(/\/+$/, "");
}

/**
 * Reads the bearer token from a Namespace token file (`{"bearer_token": …}`, the format nsc reads
 * through NSC_TOKEN_FILE). Session tokens need an exchange only nsc performs, so they are refused
 * with advice rather than sent and rejected.
 */
export async function readBearerToken(path: string | undefined): Promise<string> {
  if (!path) {
    throw new ComputeApiError("token", "token", "no Namespace token file configured (set namespace.token_file or NSC_TOKEN_FILE)");
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new ComputeApiError("token", "token", `cannot read the Namespace token file ${path} (${code})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ComputeApiError(
      "token",
      "token",
      `the Namespace token file ${path} is not JSON; wrap a raw token as {"bearer_token": "<token>"}`,
    );
  }
  const obj = (parsed && typeof parsed === "object" ? parsed : {}) as Record<string, unknown>;
  const token = obj.bearer_token ?? obj.tenant_token;
  if (typeof token === "string" && token.trim()) return token.trim();
  if (typeof obj.session_token === "string") {
    throw new ComputeApiError(
      "token",
      "token",
      `the Namespace token file ${path} holds a session_token, which only nsc can exchange; the Compute API needs a bearer_token`,
    );
  }
  throw new ComputeApiError("token", "token", `the Namespace token file ${path} has no "bearer_token" key`);
}

export interface ComputeApiOptions {
  baseUrl: string;
  /** Read on every call, so a rotated token file takes effect without a restart. */
  tokenFile: string | undefined;
  timeoutMs?: number;
  logger?: Logger;
  metrics?: Metrics;
}

/**
 * A small typed client for the Namespace Compute API over Connect with JSON
 * (docs/upstream-contracts.md#namespace-compute-api). No codegen: the four unary calls the macOS
 * path needs.
 */
export class ComputeApi {
  readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(private readonly opts: ComputeApiOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  createInstance(req: CreateInstanceRequest, signal?: AbortSignal): Promise<DescribeInstanceResponse> {
    return this.call("CreateInstance", req, describeInstanceResponseSchema, signal);
  }

  describeInstance(instanceId: string, signal?: AbortSignal): Promise<DescribeInstanceResponse> {
    return this.call("DescribeInstance", { instanceId }, describeInstanceResponseSchema, signal);
  }

  /** Destroys an instance; one that is already gone (`not_found`) counts as destroyed. */
  async destroyInstance(instanceId: string, reason?: string, signal?: AbortSignal): Promise<{ alreadyGone: boolean }> {
    try {
      await this.call("DestroyInstance", reason ? { instanceId, reason } : { instanceId }, emptyResponseSchema, signal);
      return { alreadyGone: false };
    } catch (err) {
      if (err instanceof ComputeApiError && err.code === "not_found") return { alreadyGone: true };
      throw err;
    }
  }

  /**
   * Every instance whose labels equal all of `labels`, following the pagination cursor. Without
   * includeCompleteRuns the server returns only PENDING/CREATING/RUNNING instances.
   */
  async listInstances(
    labels: Record<string, string>,
    opts: { includeCompleteRuns?: boolean; signal?: AbortSignal } = {},
  ): Promise<InstanceMetadata[]> {
    const labelFilter = Object.entries(labels).map(([name, value]) => ({ name, value, op: "EQUAL" as const }));
    const out: InstanceMetadata[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; ; page++) {
      const req: ListInstancesRequest = { labelFilter };
      if (opts.includeCompleteRuns) req.includeCompleteRuns = true;
      if (cursor) req.paginationCursor = cursor;
      const res = await this.call("ListInstances", req, listInstancesResponseSchema, opts.signal);
      out.push(...res.instances);
      cursor = res.paginationCursor || undefined;
      if (!cursor) return out;
      // A server handing back a cursor it already gave would otherwise loop forever.
      if (seen.has(cursor) || page >= 1000) {
        throw new ComputeApiError("ListInstances", "bad_response", "the pagination cursor repeated");
      }
      seen.add(cursor);
    }
  }

  private async call<S extends z.ZodType>(method: string, body: unknown, schema: S, signal?: AbortSignal): Promise<z.infer<S>> {
    const started = Date.now();
    let outcome = "ok";
    try {
      const token = await readBearerToken(this.opts.tokenFile);
      return await this.send(method, body, schema, token, signal);
    } catch (err) {
      outcome = err instanceof ComputeApiError ? err.code : "error";
      throw err;
    } finally {
      this.opts.metrics?.namespaceCalls.inc({ api: "compute", command: method, outcome });
      this.opts.logger?.debug({ method, outcome, ms: Date.now() - started }, "compute api call");
    }
  }

  private async send<S extends z.ZodType>(
    method: string,
    body: unknown,
    schema: S,
    token: string,
    signal?: AbortSignal,
  ): Promise<z.infer<S>> {
    const url = `${this.baseUrl}/${COMPUTE_SERVICE}/${method}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let status: number;
    let text: string;
    try {
      const res = await request(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "connect-protocol-version": "1",
          "connect-timeout-ms": String(this.timeoutMs),
        },
        body: JSON.stringify(body),
        signal: combined,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      if (timeout.aborted) throw new ComputeApiError(method, "timeout", `no answer from ${this.baseUrl} within ${this.timeoutMs} ms`);
      if (signal?.aborted) throw new ComputeApiError(method, "canceled", "the call was cancelled");
      const e = err as NodeJS.ErrnoException;
      throw new ComputeApiError(method, "network", `${this.baseUrl}: ${scrub(e.code ?? e.message, token)}`);
    }

    if (status === 200) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new ComputeApiError(method, "bad_response", "the answer is not JSON", status);
      }
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ComputeApiError(
          method,
          "bad_response",
          `unexpected answer: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "invalid"}`,
          status,
        );
      }
      return parsed.data;
    }

    let code: ConnectCode = codeFromHttpStatus(status);
    let message = text.length > 300 ? `${text.slice(0, 300)}…` : text;
    try {
      const err = connectErrorSchema.safeParse(JSON.parse(text));
      if (err.success) {
        if (isConnectCode(err.data.code)) code = err.data.code;
        message = err.data.message;
      }
    } catch {
      // Not a Connect error body: keep the HTTP-status mapping and the raw text.
    }
    throw new ComputeApiError(method, code, scrub(message, token), status);
  }
}

/** Belt and braces: a server echoing the token back must not put it in our errors. */
function scrub(text: string, token: string): string {
  return token ? text.split(token).join("[redacted]") : text;
}
