import type { LogFn, Logger } from "pino";
import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";

const WARN = 40;
const FATAL = 60;

function fieldsKey(fields: unknown): string {
  try {
    return JSON.stringify(fields) ?? "";
  } catch {
    return `unserializable:${Math.random()}`;
  }
}

/**
 * A pino logMethod hook against warnings that repeat on every tick (a Compute API that is down, a
 * Forgejo that cannot be reached): a warning or error is written at its level when it first appears
 * or when its fields change (a different error); the same line again within `windowMs` goes out at
 * debug with `repeated: true`, and the first one after the window at its level again with the
 * number of lines that were demoted (`repeated: n`). The state stays visible where it belongs: in
 * the metrics and the status APIs. Fatal lines are never demoted.
 */
export function repeatLimit(windowMs = 10 * 60_000, now: Clock = systemClock, maxSites = 1000) {
  const sites = new Map<string, { fields: string; at: number; demoted: number }>();
  return function logMethod(this: Logger, args: Parameters<LogFn>, method: LogFn, level: number): void {
    const [first, ...rest] = args as unknown[];
    const withFields = typeof first === "object" && first !== null && !(first instanceof Error);
    const msg = withFields ? rest[0] : first;
    if (level < WARN || level >= FATAL || typeof msg !== "string") {
      method.apply(this, args);
      return;
    }
    const site = `${level} ${fieldsKey(this.bindings())} ${msg}`;
    const fields = withFields ? fieldsKey(first) : "";
    const seen = sites.get(site);
    const t = now().getTime();
    const obj = withFields ? (first as Record<string, unknown>) : {};
    const tail = withFields ? rest.slice(1) : rest;
    if (seen && seen.fields === fields && t - seen.at < windowMs) {
      seen.demoted += 1;
      (this.debug as (...a: unknown[]) => void)({ ...obj, repeated: true }, msg, ...tail);
      return;
    }
    if (!seen && sites.size >= maxSites) sites.clear();
    sites.set(site, { fields, at: t, demoted: 0 });
    if (seen && seen.fields === fields && seen.demoted > 0) {
      (method as (...a: unknown[]) => void).apply(this, [{ ...obj, repeated: seen.demoted }, msg, ...tail]);
      return;
    }
    method.apply(this, args);
  };
}
