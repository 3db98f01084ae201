import type { FastifyReply, FastifyRequest } from "fastify";
import type { Clock } from "../shared/clock.js";
import { systemClock } from "../shared/clock.js";
import { HttpError } from "./errors.js";

/**
 * A fixed-window limit per client address for endpoints that spend money. With trust_proxy set,
 * req.ip is the client behind Caddy, not Caddy itself.
 */
export function rateLimit(perMinute: number, now: Clock = systemClock) {
  const windows = new Map<string, { start: number; count: number }>();
  return async function limit(req: FastifyRequest, _reply: FastifyReply): Promise<void> {
    if (perMinute <= 0) return;
    const t = now().getTime();
    let w = windows.get(req.ip);
    if (!w || t - w.start >= 60_000) {
      if (windows.size > 10_000) windows.clear();
      w = { start: t, count: 0 };
      windows.set(req.ip, w);
    }
    w.count += 1;
    if (w.count > perMinute) {
      const retry = Math.max(1, Math.ceil((w.start + 60_000 - t) / 1000));
      throw new HttpError(
        429,
        "rate_limited",
        `more than ${perMinute} requests per minute from ${req.ip} (http.rate_limit_per_minute); retry in ${retry}s`,
        undefined,
        {
          "retry-after": String(retry),
        },
      );
    }
  };
}
