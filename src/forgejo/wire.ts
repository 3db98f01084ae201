import { z } from "zod";

/**
 * The response bodies the client reads, as Forgejo (swagger) and Gitea 1.24 send them
 * (docs/upstream-contracts.md#forgejo-and-gitea-http-api). Lenient where servers differ (nulls,
 * absent fields), strict on what forgejo-nsc relies on. Unknown fields are dropped.
 */

const int = z.number().int();
const strings = z
  .array(z.string())
  .nullish()
  .transform((v) => v ?? []);

export const versionBody = z.object({ version: z.string() });

export const registrationTokenBody = z.object({ token: z.string().min(1) });

export const registeredRunnerBody = z.object({ id: int, uuid: z.string().min(1), token: z.string().min(1) });

export const forgejoRunnerBody = z.object({
  id: int,
  uuid: z.string().optional(),
  name: z.string(),
  status: z.string(),
  labels: strings,
  ephemeral: z.boolean().optional(),
});
export type ForgejoRunnerBody = z.infer<typeof forgejoRunnerBody>;

/** Gitea: status online/offline plus busy; labels are objects. */
export const giteaRunnerBody = z.object({
  id: int,
  name: z.string(),
  status: z.string(),
  busy: z.boolean().optional(),
  ephemeral: z.boolean().optional(),
  labels: z
    .array(z.object({ name: z.string() }))
    .nullish()
    .transform((v) => (v ?? []).map((l) => l.name)),
});
export type GiteaRunnerBody = z.infer<typeof giteaRunnerBody>;

export const giteaRunnersBody = z.object({
  runners: z
    .array(giteaRunnerBody)
    .nullish()
    .transform((v) => v ?? []),
  total_count: int,
});

export const forgejoJobBody = z.object({
  id: int,
  run_id: int.optional(),
  attempt: int.optional(),
  handle: z.string().optional(),
  repo_id: int.optional(),
  owner_id: int.optional(),
  name: z.string().optional(),
  needs: z.array(z.string()).nullish(),
  runs_on: strings,
  task_id: int.optional(),
  status: z.string(),
});
/** Forgejo sends JSON null for an empty job list. */
export const forgejoJobsBody = z
  .array(forgejoJobBody)
  .nullable()
  .transform((v) => v ?? []);

export const giteaJobBody = z.object({
  id: int,
  run_id: int.optional(),
  name: z.string().optional(),
  labels: strings,
  run_attempt: int.optional(),
  status: z.string(),
  conclusion: z.string().nullish(),
});
export type GiteaJobBody = z.infer<typeof giteaJobBody>;

export const giteaJobsBody = z.object({
  jobs: z
    .array(giteaJobBody)
    .nullish()
    .transform((v) => v ?? []),
  total_count: int,
});

/** Forgejo has url/content_type at top level; Gitea only inside config. */
export const hookBody = z.object({
  id: int,
  type: z.string(),
  url: z.string().optional(),
  content_type: z.string().optional(),
  config: z.record(z.string(), z.unknown()).nullish(),
  events: strings,
  active: z.boolean(),
});
export type HookBody = z.infer<typeof hookBody>;

export const userBody = z.object({ id: int, login: z.string(), is_admin: z.boolean().optional() });
