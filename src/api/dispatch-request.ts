import { z } from "zod";
import { parseDuration } from "../config/duration.js";
import { scopeSchema } from "../forgejo/scope.js";

export const MAX_TTL_MS = 24 * 3_600_000;
/** Shorter than this, an instance would be destroyed before a runner could even start. */
export const MIN_TTL_MS = 60_000;

/** A client's value in a message: short, so a huge field is never echoed back in full. */
const quote = (text: string) => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);

const ttl = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: "custom", message: `${quote(text)} is not a positive Go duration such as 20m or 1h30m` });
    return z.NEVER;
  }
  if (ms < MIN_TTL_MS || ms > MAX_TTL_MS) {
    ctx.addIssue({ code: "custom", message: `${quote(text)} is outside the allowed range: use 1m to 24h, such as 20m or 1h30m` });
    return z.NEVER;
  }
  return ms;
});

const envKey = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Control and invisible format characters (NUL, newline, escape, bidi overrides): never in a name. */
const CONTROL = /[\p{Cc}\p{Cf}]/u;

const label = z
  .string()
  .min(1)
  .max(128)
  .refine((v) => !CONTROL.test(v), "must not contain control characters (such as NUL or newline)")
  .regex(/^[^,\s]+$/, "must not contain commas or whitespace");

/**
 * The Forgejo job a runner is dispatched for: its id, and the attempt and handle when the caller
 * knows them (the runner then takes only that job).
 */
export const jobRefSchema = z
  .object({
    id: z.number().int().positive(),
    attempt: z.number().int().nonnegative().optional(),
    handle: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._-]+$/)
      .optional(),
  })
  .strict();
export type JobRef = z.output<typeof jobRefSchema>;

/** The body of POST /api/v1/dispatch. Unknown fields are rejected so typos do not pass silently. */
export const dispatchRequestSchema = z
  .object({
    count: z.number().int().min(1).max(50).default(1),
    labels: z.array(label).min(1).max(32).optional(),
    scope: scopeSchema.optional(),
    ttl: ttl.optional(),
    machine_type: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9/:x._-]+$/, "must look like 4x8 or linux/arm64:8x16")
      .optional(),
    image: z
      .string()
      .min(1)
      .max(512)
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/,
        "must be an image reference such as code.forgejo.org/forgejo/runner:12 (letters, digits and . _ - / : @)",
      )
      .optional(),
    env: z
      .record(
        z
          .string()
          .max(128, "env keys must be at most 128 characters")
          .regex(envKey, "env keys must be shell variable names (letters, digits and _, not starting with a digit)"),
        z
          .string()
          .max(8192)
          .refine((v) => !v.includes("\0"), "env values must not contain NUL characters"),
      )
      .refine((e) => Object.keys(e).length <= 64, "at most 64 variables")
      .optional(),
    job: jobRefSchema.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.job && r.count !== 1) {
      ctx.addIssue({ code: "custom", path: ["count"], message: "must be 1 when a job is named (one runner per job)" });
    }
  });

/** The request as the dispatcher works with it: validated, defaults filled, ttl in milliseconds. */
export type DispatchRequest = z.output<typeof dispatchRequestSchema>;
/** The request as a client writes it (JSON, before defaults: count may be left out, ttl is text). */
export type DispatchRequestBody = z.input<typeof dispatchRequestSchema>;

/** The query of GET /api/v1/dispatches/{id} and POST /api/v1/dispatch: wait for the runners, and how long. */
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

/** The Idempotency-Key header: printable ASCII without spaces. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
