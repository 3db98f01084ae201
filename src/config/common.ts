import { z } from "zod";
import { parseDuration } from "./duration.js";

/** A Go-syntax duration string ("20m", "1h30m"), parsed to milliseconds. */
export const durationMs = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not a duration (use Go syntax such as 90s, 20m, 1h30m)` });
    return z.NEVER;
  }
  return ms;
});

/** "host:port", ":port" or "port". */
export const listenAddress = z.string().refine((v) => /^(\[[0-9a-fA-F:]+\]|[^:\s]*):?\d{1,5}$/.test(v), {
  message: 'must look like "127.0.0.1:8080", ":8080" or "[::1]:8080"',
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
  })
  .strict()
  .prefault({});
