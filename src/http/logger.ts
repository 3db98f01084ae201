import pino from "pino";
import type { Logger, LoggerOptions } from "pino";

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

export function loggerOptions(level: string, name: string): LoggerOptions {
  return {
    level,
    name,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { service: name },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}

export function createLogger(level: string, name: string, destination?: pino.DestinationStream): Logger {
  return destination ? pino(loggerOptions(level, name), destination) : pino(loggerOptions(level, name));
}

export type { Logger };
