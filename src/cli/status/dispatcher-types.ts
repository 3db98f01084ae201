import { z } from "zod";
import { list, nullish } from "./lenient.js";

/*
 * The dispatcher's runner views (src/api/runner-view.ts) as the CLI reads them. Lenient on purpose:
 * the CLI may talk to a newer or older dispatcher, so unknown fields and states pass and most
 * fields are optional; only what the table cannot do without is required.
 * test/cli/contract-types.test.ts checks at compile time that the shared RunnerView is accepted.
 */

export const transitionSchema = z.looseObject({
  at: z.string(),
  from: z.string().nullable().optional(),
  to: z.string(),
  reason: z.string().default(""),
});

export const runnerSummarySchema = z.looseObject({
  name: z.string(),
  state: z.string(),
  reason: z.string().default(""),
  dispatch_id: nullish(z.string()),
  platform: nullish(z.string()),
  labels: list(z.string()),
  scope: nullish(z.looseObject({ level: z.string(), owner: nullish(z.string()), name: nullish(z.string()) })),
  scope_key: nullish(z.string()),
  job: nullish(z.looseObject({ id: z.number(), attempt: nullish(z.number()), handle: nullish(z.string()) })),
  instance_id: nullish(z.string()),
  machine_type: nullish(z.string()),
  created_at: nullish(z.string()),
  updated_at: nullish(z.string()),
  /** When the runner entered its current state, if the dispatcher says so. */
  state_since: nullish(z.string()),
  launched_at: nullish(z.string()),
  expires_at: nullish(z.string()),
  finished_at: nullish(z.string()),
});

export const runnerDetailSchema = runnerSummarySchema.extend({
  history: list(transitionSchema),
});

export const runnerListSchema = z.looseObject({ runners: list(runnerSummarySchema) });

export type RunnerSummary = z.infer<typeof runnerSummarySchema>;
export type RunnerDetail = z.infer<typeof runnerDetailSchema>;
export type RunnerTransition = z.infer<typeof transitionSchema>;
