import { z } from "zod";
import { parseDuration } from "./duration.js";

/** A hint for a bare number where a string with a unit or a host was expected (YAML reads `30` as a number). */
const numberHint = (hint: (n: number) => string) => (iss: { input?: unknown }) =>
  typeof iss.input === "number" ? hint(iss.input) : undefined;

/** A Go-syntax duration string ("20m", "1h30m"), parsed to milliseconds. */
export const durationMs = z
  .string({ error: numberHint((n) => `${n} is a number; write a duration with its unit, such as "${n}s" or "${n}m"`) })
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `"${text}" is not a duration (use Go syntax such as 90s, 20m, 1h30m)` });
      return z.NEVER;
    }
    return ms;
  });

/** "host:port", ":port" or "port" (0 picks a free port: tests). */
export const listenAddress = z
  .string({
    error: numberHint((n) => `${n} is a number; write the address as a string such as "127.0.0.1:${n}" (or ":${n}" for every interface)`),
  })
  .superRefine((v, ctx) => {
    if (!/^(\[[0-9a-fA-F:]+\]|[^:\s]*):?\d{1,5}$/.test(v)) {
      ctx.addIssue({ code: "custom", message: 'must look like "127.0.0.1:8080", ":8080" or "[::1]:8080"' });
      return;
    }
    const { port } = splitListen(v);
    if (port > 65_535) ctx.addIssue({ code: "custom", message: `port ${port} is out of range (0-65535); write it like "127.0.0.1:8080"` });
  });

/** An http or https URL; `example` shows the expected form in the message. */
export const httpUrl = (example: string) => z.url({ protocol: /^https?$/, message: `must be an http(s) URL such as ${example}` });

const envKeyPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Environment for a runner: keys must be shell variable names. */
export const envRecord = z.record(
  z.string().regex(envKeyPattern, "env keys must be shell variable names (letters, digits and _, not starting with a digit)"),
  z.string(),
);

/** Headers sent with every Forgejo call. Authorization is ours (from token / token_file): refuse it instead of dropping it. */
export const extraHeaders = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase() === "authorization") {
      ctx.addIssue({
        code: "custom",
        path: [name],
        message: "cannot be set here: the PAT is sent as Authorization; set it with token or token_file and remove this header",
      });
    }
  }
});

export function splitListen(listen: string): { host: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d+)$/.exec(listen);
  const host = m?.[1] ? m[1].replace(/^\[|\]$/g, "") : "0.0.0.0";
  return { host, port: Number(m?.[2] ?? 0) };
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export const logSchema = z
  .object({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info") })
  .strict()
  .prefault({});

/** Bearer tokens that may call an API. Several, so they can be rotated. */
export const authSchema = z
  .object({
    tokens: z.array(z.string().min(16, "must be at least 16 characters")).default([]),
    tokens_file: z.string().optional(),
    /** Listen on a non-loopback address without any token. Only for trusted networks. */
    allow_unauthenticated: z.boolean().default(false),
    /** Require a token on /metrics too. */
    protect_metrics: z.boolean().default(false),
  })
  .strict()
  .prefault({});

export const httpSchema = z
  .object({
    body_limit: z.number().int().positive().default(65_536),
    /** Fastify's trustProxy: true, a hop count, or addresses/CIDRs of the proxies (Caddy). */
    trust_proxy: z.union([z.boolean(), z.number().int().nonnegative(), z.string(), z.array(z.string())]).default(false),
    /** Requests per minute per client address on the spending endpoints; 0 disables it. */
    rate_limit_per_minute: z.number().int().nonnegative().default(600),
    /** A client must send all request headers within this (slowloris). */
    headers_timeout: durationMs.prefault("10s"),
    /** ...and the whole request, body included, within this. */
    request_timeout: durationMs.prefault("30s"),
    /** A connection with no traffic at all is closed after this (long waits extend it per request). */
    connection_timeout: durationMs.prefault("60s"),
    /** An idle keep-alive connection is closed after this; keep it above the proxy's own (Caddy: 2m). */
    keep_alive_timeout: durationMs.prefault("130s"),
    /** Open connections at most; more are closed at once. Keep it well under the file limit. */
    max_connections: z.number().int().positive().default(512),
  })
  .strict()
  .superRefine((h, ctx) => {
    for (const key of ["headers_timeout", "request_timeout", "connection_timeout", "keep_alive_timeout"] as const) {
      if (h[key] < 1000) ctx.addIssue({ code: "custom", path: [key], message: 'must be at least 1s, such as "10s"' });
    }
    if (h.headers_timeout > h.request_timeout) {
      ctx.addIssue({
        code: "custom",
        path: ["headers_timeout"],
        message: "must not be longer than http.request_timeout (the headers are part of the request)",
      });
    }
  })
  .prefault({});

/**
 * For a refinement that must run even when other keys are invalid (so every problem is listed at
 * once), but only on an object: a section that is missing altogether already has its own problem.
 */
export const EVEN_WITH_OTHER_PROBLEMS = {
  when: (payload: { value: unknown }) => typeof payload.value === "object" && payload.value !== null,
};
