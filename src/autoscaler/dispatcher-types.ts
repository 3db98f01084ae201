import { z } from "zod";
import { scopeSchema } from "../forgejo/scope.js";
import type { Scope } from "../forgejo/scope.js";

/** States a runner passes through at the dispatcher. */
export const IN_FLIGHT_STATES = ["pending", "launching", "running", "finishing"] as const;
export type InFlightState = (typeof IN_FLIGHT_STATES)[number];
export const TERMINAL_RUNNER_STATES: readonly string[] = ["done", "failed"];

/** The body of POST /api/v1/dispatch, as the autoscaler sends it. */
export interface DispatchBody {
  count: number;
  labels: string[];
  scope: Scope;
  ttl?: string | undefined;
  machine_type?: string | undefined;
  image?: string | undefined;
  env?: Record<string, string> | undefined;
  job?: { id: number; attempt?: number | undefined; handle?: string | undefined } | undefined;
}

const nullableString = z.string().nullable().optional();

/** One runner of GET /api/v1/runners; only the fields planning reads are required. */
export const dispatcherRunnerSchema = z.object({
  name: z.string(),
  dispatch_id: z.string().optional(),
  state: z.string(),
  reason: z.string().default(""),
  labels: z.array(z.string()).default([]),
  // Planning reads scope_key only. A record the dispatcher accepted before names were validated
  // (owner "..", say) must not make the whole list unreadable: such a scope is dropped, not fatal.
  scope: scopeSchema.optional().catch(undefined),
  scope_key: z.string().optional(),
  job: z
    .object({ id: z.number(), attempt: z.number().nullable().optional(), handle: z.string().nullable().optional() })
    .nullable()
    .optional(),
  instance_id: nullableString,
  created_at: z.string().optional(),
  updated_at: z.string().optional(),
  expires_at: nullableString,
});
export type DispatcherRunner = z.infer<typeof dispatcherRunnerSchema>;

export const runnerListSchema = z.object({ runners: z.array(dispatcherRunnerSchema) });

export const dispatchResponseSchema = z.object({
  dispatch_id: z.string(),
  runners: z.array(z.object({ name: z.string(), state: z.string(), reason: z.string().nullable().optional() })),
  status_url: z.string().optional(),
});
export type DispatchResponse = z.infer<typeof dispatchResponseSchema>;

/**
 * What one POST came to. created/duplicate carry the dispatcher's answer; rejected is permanent
 * for this request (400/401/403/409); unavailable is worth retrying (network, timeout, 429, 5xx).
 */
export type DispatchOutcome =
  | { kind: "created"; response: DispatchResponse }
  | { kind: "duplicate"; response: DispatchResponse }
  | { kind: "rejected"; status: number; message: string }
  | { kind: "unavailable"; status: number; message: string; retryAfterMs?: number | undefined };
