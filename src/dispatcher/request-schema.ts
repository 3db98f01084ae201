import { z } from "zod";
import { parseDuration } from "../config/duration.js";
import { scopeSchema } from "../forgejo/scope.js";

export const MAX_TTL_MS = 24 * 3_600_000;

const ttl = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not a positive Go duration such as 20m or 1h30m` });
    return z.NEVER;
  }
  if (ms > MAX_TTL_MS) {
    ctx.addIssue({ code: "custom", message: `"${text}" is longer than the 24h maximum` });
    return z.NEVER;
  }
  return ms;
});

const envKey = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The body of POST /api/v1/dispatch. Unknown fields are rejected so typos do not pass silently. */
export const dispatchRequestSchema = z
  .object({
    count: z.number().int().min(1).max(50).default(1),
    labels: z.array(z.string().min(1).max(128).regex(/^[^,\s]+$/, "must not contain commas or whitespace")).min(1).max(32).optional(),
    scope: scopeSchema.optional(),
    ttl: ttl.optional(),
    machine_type: z.string().min(1).max(64).regex(/^[A-Za-z0-9/:x._-]+$/, "must look like 4x8 or linux/arm64:8x16").optional(),
    image: z.string().min(1).max(512).regex(/^[^\s]+$/, "must not contain whitespace").optional(),
    env: z
      .record(z.string().regex(envKey, "env keys must be shell variable names"), z.string().max(8192))
      .refine((e) => Object.keys(e).length <= 64, "at most 64 variables")
      .optional(),
    job: z
      .object({
        id: z.number().int().positive(),
        attempt: z.number().int().nonnegative().optional(),
        handle: z.string().min(1).max(128).regex(/^[A-Za-z0-9._-]+$/).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.job && r.count !== 1) {
      ctx.addIssue({ code: "custom", path: ["count"], message: "must be 1 when a job is named (one runner per job)" });
    }
  });

export type DispatchRequest = z.output<typeof dispatchRequestSchema>;

export const waitQuerySchema = z
  .object({
    wait: z.enum(["launched", "finished"]).optional(),
    timeout: z
      .string()
      .transform((t, ctx) => {
        const ms = parseDuration(t);
        if (ms === undefined || ms <= 0 || ms > 3_600_000) {
          ctx.addIssue({ code: "custom", message: "must be a duration between 1s and 1h" });
          return z.NEVER;
        }
        return ms;
      })
      .optional(),
  })
  .strict();

export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
