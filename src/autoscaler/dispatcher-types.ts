import { z } from "zod";
import type { DispatchRequestBody } from "../api/dispatch-request.js";
import { dispatchViewSchema, jobViewSchema, runnerViewSchema } from "../api/runner-view.js";

/*
 * The dispatcher's API as the autoscaler uses it, from the shared definitions in src/api/. What it
 * reads is lenient where a dispatcher of another version may differ: unknown fields are dropped,
 * any state text passes (a newer dispatcher may add states), and most fields may be missing.
 */

export { IN_FLIGHT_STATES } from "../api/states.js";

/** The body of POST /api/v1/dispatch as the autoscaler sends it: always a count, labels and scope. */
export type DispatchBody = DispatchRequestBody & Required<Pick<DispatchRequestBody, "count" | "labels" | "scope">>;

const view = runnerViewSchema.shape;

/** One runner of GET /api/v1/runners; only the fields planning reads, and only the name and state required. */
export const dispatcherRunnerSchema = z.object({
  name: view.name,
  dispatch_id: view.dispatch_id.optional(),
  state: z.string(),
  reason: view.reason.default(""),
  labels: view.labels.default([]),
  // Planning reads scope_key only. A record the dispatcher accepted before names were validated
  // (owner "..", say) must not make the whole list unreadable: such a scope is dropped, not fatal.
  scope: view.scope.optional().catch(undefined),
  scope_key: view.scope_key.optional(),
  job: z.object(jobViewSchema.shape).partial({ attempt: true, handle: true }).nullable().optional(),
  instance_id: view.instance_id.optional(),
  created_at: view.created_at.optional(),
  updated_at: view.updated_at.optional(),
  expires_at: view.expires_at.optional(),
});
export type DispatcherRunner = z.infer<typeof dispatcherRunnerSchema>;

export const runnerListSchema = z.object({ runners: z.array(dispatcherRunnerSchema) });

const answer = dispatchViewSchema.shape;

/** The answer to POST /api/v1/dispatch; the autoscaler reads the dispatch id and the runners' names and states. */
export const dispatchResponseSchema = z.object({
  dispatch_id: answer.dispatch_id,
  runners: z.array(z.object({ name: z.string(), state: z.string(), reason: z.string().nullable().optional() })),
  status_url: answer.status_url.optional(),
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
