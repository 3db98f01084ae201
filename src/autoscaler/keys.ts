import type { ActionRunJob } from "../forgejo/types.js";

/**
 * Idempotency keys. A job's key is derived from the job alone, so the poller, a webhook and a
 * replayed delivery ask for the same runner and the dispatcher launches it once. A job whose
 * runner ended without taking it gets the same key with a generation suffix (":r1", ":r2", …).
 */
export function jobBaseKey(instance: string, job: Pick<ActionRunJob, "id" | "attempt" | "handle">): string {
  const attempt = job.handle ? job.handle : String(job.attempt ?? 0);
  return `${instance}:job:${job.id}:${attempt}`;
}

export function withGeneration(base: string, gen: number): string {
  return gen === 0 ? base : `${base}:r${gen}`;
}

/** Warm-pool keys name a slot; act reuses a slot's key until the dispatcher has answered for it. */
export function warmKey(instance: string, target: string, boot: string, seq: number): string {
  return `${instance}:warm:${target}:${boot}-${seq}`;
}

/**
 * What the dispatcher last told us about a job's key (the "key book"). created/live: a runner
 * exists or existed for it; terminal: every runner of the key had finished when we asked; error:
 * the request did not get through (retry the same key); rejected: the dispatcher refused it.
 */
export interface KeyRecord {
  gen: number;
  status: "created" | "live" | "terminal" | "error" | "rejected";
  /** When we learned it (ms). */
  at: number;
  runners: readonly string[];
  message?: string | undefined;
}

/**
 * Delay before a job gets its next generation: the first retry is immediate (the dispatcher has
 * already retried the launch itself), then 15 s, 30 s, … up to 10 minutes.
 */
export function generationDelayMs(gen: number): number {
  if (gen <= 1) return 0;
  return Math.min(15_000 * 2 ** (gen - 2), 600_000);
}

/** How long a refused request (403, 409, 400) waits before it is asked again. */
export const REJECTED_RETRY_MS = 60_000;
