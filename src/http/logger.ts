import pino from "pino";
import type { Logger, LoggerOptions } from "pino";
import { repeatLimit } from "./repeat-limit.js";

/**
 * Paths pino censors wherever they appear. Secret-bearing values also never get passed to the
 * logger in the first place; this is the second line of defence.
 */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-forgejo-signature"]',
  'req.headers["x-gitea-signature"]',
  'req.headers["x-hub-signature-256"]',
  'req.headers["x-hub-signature"]',
  "token",
  "*.token",
  "*.*.token",
  "secret",
  "*.secret",
  "*.webhook_secret",
  "*.registrationToken",
  "registrationToken",
  "password",
  "*.password",
  "bearer_token",
  "*.bearer_token",
  "env",
  "*.env",
  "credentials",
  "*.credentials",
];

/** Query parameters whose values look like credentials (access_token, api_key, client_secret, sig …). */
const SECRET_PARAM = /token|secret|passw|pwd|key|auth|sig|credential|session|cookie|code/i;

/**
 * A request URL fit for a log: the value of every secret-looking query parameter replaced by
 * [redacted]. Clients put tokens in query strings (`?access_token=`); none of ours are read from
 * there, but the request log would otherwise keep them.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, " "));
      } catch {
        // a malformed escape: judge the raw name
      }
      return SECRET_PARAM.test(name) && eq >= 0 ? `${rawName}=[redacted]` : pair;
    });
  return `${url.slice(0, q)}?${params.join("&")}`;
}

interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number } | null;
}

export function loggerOptions(level: string, name: string): LoggerOptions {
  return {
    level,
    name,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    // Replaces Fastify's request serializer (same fields) so the logged URL has no secrets.
    serializers: {
      req: (req: LoggedRequest) => ({
        method: req.method,
        url: typeof req.url === "string" ? redactUrl(req.url) : req.url,
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
    },
    base: { service: name },
    timestamp: pino.stdTimeFunctions.isoTime,
    // A warning that repeats on every tick is written when it starts or changes, then every 10 minutes.
    hooks: { logMethod: repeatLimit() },
  };
}

export function createLogger(level: string, name: string, destination?: pino.DestinationStream): Logger {
  return destination ? pino(loggerOptions(level, name), destination) : pino(loggerOptions(level, name));
}

export type { Logger };
