import { z } from "zod";
import { scopeSchema } from "../forgejo/scope.js";
import { RUNNER_STATES, isOneOf } from "./states.js";

/*
 * What the dispatcher answers about runners (src/dispatcher/views.ts produces it, typed by these
 * schemas): GET /api/v1/runners, GET /api/v1/runners/{name}, GET /api/v1/dispatches/{id} and the
 * answer to POST /api/v1/dispatch. Exact: readers of another version derive lenient schemas from
 * these (src/autoscaler/dispatcher-types.ts, src/cli/status/dispatcher-types.ts).
 */

/** Where a runner's instance runs; chosen by the dispatcher from the labels. */
export const PLATFORMS = ["linux", "macos", "windows"] as const;
export type Platform = (typeof PLATFORMS)[number];

const runnerStateSchema = z.enum(RUNNER_STATES);
const timestamp = z.string();

/** The job a runner was dispatched for; attempt and handle are null when the request left them out. */
export const jobViewSchema = z.object({ id: z.number(), attempt: z.number().nullable(), handle: z.string().nullable() }).strict();

/** One state change in a runner's history (only in the single-runner answers). */
export const transitionViewSchema = z
  .object({ at: timestamp, from: runnerStateSchema.nullable(), to: runnerStateSchema, reason: z.string() })
  .strict();

/** One runner: never env values, tokens or anything secret (env_keys lists the names only). */
export const runnerViewSchema = z
  .object({
    name: z.string(),
    dispatch_id: z.string(),
    state: runnerStateSchema,
    reason: z.string(),
    platform: z.enum(PLATFORMS),
    labels: z.array(z.string()),
    scope: scopeSchema,
    scope_key: z.string(),
    job: jobViewSchema.nullable(),
    machine_type: z.string(),
    /** Only Linux runners run in a container image. */
    image: z.string().nullable(),
    /** A Go duration such as 30m0s. */
    ttl: z.string(),
    env_keys: z.array(z.string()),
    instance_id: z.string().nullable(),
    forgejo_runner_id: z.number().nullable(),
    registration: z.enum(["ephemeral", "token"]).nullable(),
    launch_attempts: z.number(),
    created_at: timestamp,
    updated_at: timestamp,
    launched_at: timestamp.nullable(),
    expires_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
    history: z.array(transitionViewSchema).optional(),
  })
  .strict();
export type RunnerView = z.input<typeof runnerViewSchema>;

/** GET /api/v1/runners. */
export const runnerListViewSchema = z.object({ runners: z.array(runnerViewSchema) }).strict();

/** The most runners one GET /api/v1/runners answers with (`limit`; 500 when not given). */
export const RUNNER_LIST_MAX_LIMIT = 5000;

/** The items of a comma-separated query value, or undefined when it is empty or absent. */
export const commaList = (v: string | undefined) =>
  v
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;

/** The query of GET /api/v1/runners; state and labels are comma-separated lists. */
export const runnerListQuerySchema = z
  .object({
    state: z
      .string()
      .optional()
      .refine((v) => !v || commaList(v)!.every((s) => isOneOf(RUNNER_STATES, s)), `each state must be one of ${RUNNER_STATES.join(", ")}`),
    labels: z.string().optional(),
    scope: z.string().optional(),
    job: z.coerce.number().int().positive().optional(),
    dispatch: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(RUNNER_LIST_MAX_LIMIT).default(500),
  })
  .strict();

/**
 * A dispatch and the short form of its runners: the answer to POST /api/v1/dispatch. With ?wait,
 * also what was waited for and which runners failed meanwhile. (GET /api/v1/dispatches/{id}
 * answers the same with full runner views.)
 */
export const dispatchViewSchema = z
  .object({
    dispatch_id: z.string(),
    idempotency_key: z.string().nullable(),
    created_at: timestamp,
    status_url: z.string(),
    runners: z.array(
      z
        .object({
          name: z.string(),
          state: runnerStateSchema,
          reason: z.string(),
          instance_id: z.string().nullable(),
          status_url: z.string(),
        })
        .strict(),
    ),
    wait: z
      .object({ for: z.enum(["launched", "finished"]), complete: z.boolean() })
      .strict()
      .optional(),
    failed: z.array(z.object({ name: z.string(), reason: z.string() }).strict()).optional(),
  })
  .strict();
export type DispatchView = z.input<typeof dispatchViewSchema>;
