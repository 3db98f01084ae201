import { z } from "zod";

/*
 * The autoscaler's GET /api/v1/status as the CLI reads it. Lenient: unknown fields pass, counts
 * and times are optional, so a CLI of another version still prints what it understands.
 */

const nullish = <T extends z.ZodType>(t: T) => t.nullish().transform((v) => v ?? undefined);

export const waitingJobSchema = z.looseObject({
  id: z.number(),
  attempt: nullish(z.number()),
  handle: nullish(z.string()),
  name: nullish(z.string()),
  runs_on: z.array(z.string()).nullish().transform((v) => v ?? []),
  target: nullish(z.string()),
  runner: nullish(z.string()),
  reason: z.string().default(""),
});

export const targetStatusSchema = z.looseObject({
  name: nullish(z.string()),
  labels: z.array(z.string()).default([]),
  waiting: nullish(z.number()),
  idle: nullish(z.number()),
  in_flight: nullish(z.number()),
  min_idle: nullish(z.number()),
  max_runners: nullish(z.number()),
});

export const instanceStatusSchema = z.looseObject({
  name: z.string(),
  kind: nullish(z.string()),
  version: nullish(z.string()),
  mode: nullish(z.string()),
  last_poll_at: nullish(z.string()),
  last_success_at: nullish(z.string()),
  last_error: nullish(z.string()),
  targets: z.array(targetStatusSchema).nullish().transform((v) => v ?? []),
  waiting_jobs: z.array(waitingJobSchema).nullish().transform((v) => v ?? []),
});

export const autoscalerStatusSchema = z.looseObject({
  instances: z.array(instanceStatusSchema).nullish().transform((v) => v ?? []),
});

export type AutoscalerStatus = z.infer<typeof autoscalerStatusSchema>;
export type InstanceStatus = z.infer<typeof instanceStatusSchema>;
export type TargetStatus = z.infer<typeof targetStatusSchema>;
export type WaitingJob = z.infer<typeof waitingJobSchema>;
