import { z } from "zod";
import { list, nullish } from "./lenient.js";

/*
 * The autoscaler's GET /api/v1/status (src/autoscaler/status.ts) as the CLI reads it. Lenient:
 * unknown fields pass and most fields may be missing, so a CLI of another version still prints
 * what it understands. test/cli/contract-types.test.ts checks at compile time that the
 * autoscaler's own type is accepted.
 */

export const waitingJobSchema = z.looseObject({
  id: z.number(),
  attempt: nullish(z.number()),
  handle: nullish(z.string()),
  runs_on: list(z.string()),
  target: nullish(z.string()),
  state: nullish(z.string()),
  reason: z.string().default(""),
});

export const targetStatusSchema = z.looseObject({
  name: nullish(z.string()),
  labels: list(z.string()),
  waiting: nullish(z.number()),
  running: nullish(z.number()),
  idle: nullish(z.number()),
  in_flight: nullish(z.number()),
  min_idle: nullish(z.number()),
  max_runners: nullish(z.number()),
  note: nullish(z.string()),
});

export const instanceStatusSchema = z.looseObject({
  name: z.string(),
  base_url: nullish(z.string()),
  scope: nullish(z.string()),
  server: nullish(z.looseObject({ kind: z.string(), version: z.string() })),
  mode: nullish(z.string()),
  startup_error: nullish(z.string()),
  last_poll_at: nullish(z.string()),
  last_success_at: nullish(z.string()),
  last_error: nullish(z.looseObject({ at: nullish(z.string()), message: z.string() })),
  next_poll_at: nullish(z.string()),
  webhook: nullish(
    z.looseObject({
      configured: nullish(z.boolean()),
      setup: nullish(z.string()),
      message: nullish(z.string()),
      last_delivery_at: nullish(z.string()),
      last_delivery_event: nullish(z.string()),
    }),
  ),
  targets: list(targetStatusSchema),
  waiting_jobs: list(waitingJobSchema),
});

export const autoscalerStatusSchema = z.looseObject({ instances: list(instanceStatusSchema) });

export type AutoscalerStatus = z.infer<typeof autoscalerStatusSchema>;
export type InstanceStatus = z.infer<typeof instanceStatusSchema>;
export type TargetStatus = z.infer<typeof targetStatusSchema>;
export type WaitingJob = z.infer<typeof waitingJobSchema>;
