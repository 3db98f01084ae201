import { request } from "undici";

export type HttpFailureKind = "unreachable" | "timeout" | "status" | "not_json" | "bad_url";

/** A failed HTTP call. The message names the URL and never any credential sent with it. */
export class HttpFailure extends Error {
  constructor(
    readonly kind: HttpFailureKind,
    message: string,
    readonly status?: number,
    /** The parsed JSON body of an error answer, when it had one. */
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "HttpFailure";
  }
}

export interface JsonCall {
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs: number;
}

/** Sends a request and returns the status and parsed JSON body; non-2xx answers throw HttpFailure("status"). */
export async function callJson(url: string, call: JsonCall): Promise<{ status: number; body: unknown }> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new HttpFailure("bad_url", `"${url}" is not a URL (write it like http://127.0.0.1:8080)`);
  }
  if (target.username || target.password) {
    throw new HttpFailure("bad_url", `the URL ${target.host} must not contain credentials; pass them as flags or files`);
  }
  const shown = `${target.origin}${target.pathname}`;
  const headers: Record<string, string> = { accept: "application/json", ...call.headers };
  let payload: string | undefined;
  if (call.body !== undefined) {
    payload = JSON.stringify(call.body);
    headers["content-type"] = "application/json";
  }
  let res;
  try {
    res = await request(target, {
      method: call.method ?? "GET",
      headers,
      body: payload,
      signal: AbortSignal.timeout(call.timeoutMs),
      headersTimeout: call.timeoutMs,
      bodyTimeout: call.timeoutMs,
    });
  } catch (err) {
    const e = err as { name?: string; code?: string; message?: string };
    if (e.name === "TimeoutError" || e.name === "AbortError" || /TIMEOUT/.test(e.code ?? "")) {
      throw new HttpFailure("timeout", `${shown} did not answer within ${call.timeoutMs} ms`);
    }
    throw new HttpFailure("unreachable", `cannot connect to ${target.origin} (${e.code ?? e.message ?? "network error"})`);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch {
    throw new HttpFailure("timeout", `${shown} stopped sending its answer (status ${res.statusCode})`);
  }
  let body: unknown = undefined;
  let parsed = false;
  if (text.trim() !== "") {
    try {
      body = JSON.parse(text);
      parsed = true;
    } catch {
      parsed = false;
    }
  }
  if (res.statusCode < 200 || res.statusCode > 299) {
    const msg = parsed ? messageOf(body) : undefined;
    throw new HttpFailure(
      "status",
      `${shown} answered ${res.statusCode}${msg ? `: ${msg}` : ""}`,
      res.statusCode,
      parsed ? body : undefined,
    );
  }
  if (!parsed && text.trim() !== "") {
    throw new HttpFailure(
      "not_json",
      `${shown} did not answer with JSON (status ${res.statusCode}); is that the right URL?`,
      res.statusCode,
    );
  }
  return { status: res.statusCode, body };
}

/** The `message` field of our daemons' and Forgejo's error bodies. */
export function messageOf(body: unknown): string | undefined {
  if (body && typeof body === "object" && "message" in body) {
    const m = (body as { message: unknown }).message;
    if (typeof m === "string" && m.trim() !== "") return m.trim();
  }
  return undefined;
}
