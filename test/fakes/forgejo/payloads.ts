import { DONE_STATUSES } from "./model.js";
import { actionRunJson, giteaJobJson, repoJson, userJson } from "./serialize.js";
import type { FakeWorld } from "./world.js";

/**
 * Forgejo's ActionPayload for action_run_success / _failure / _recover (§7.3): action, run,
 * prior_status, last_run (omitted when none). No top-level repository or sender.
 */
export function actionRunPayload(
  world: FakeWorld,
  base: string,
  runId: number,
  action: "success" | "failure" | "recover",
): Record<string, unknown> {
  const run = world.run(runId);
  if (!run) throw new Error(`fake Forgejo: no run ${runId}`);
  const last = world.state.runs
    .filter((r) => r.id < run.id && r.repoId === run.repoId && r.workflowId === run.workflowId && DONE_STATUSES.includes(r.status))
    .sort((a, b) => b.id - a.id)[0];
  const payload: Record<string, unknown> = { action, run: actionRunJson(world, base, run), prior_status: "running" };
  if (last) payload.last_run = actionRunJson(world, base, last);
  return payload;
}

/**
 * Gitea's WorkflowJobPayload (§7.4): action (queued / waiting / in_progress / completed),
 * workflow_job, repository, sender, organization when the owner is an org.
 */
export function workflowJobPayload(
  world: FakeWorld,
  base: string,
  jobId: number,
  action: "queued" | "waiting" | "in_progress" | "completed",
): Record<string, unknown> {
  const job = world.job(jobId);
  if (!job) throw new Error(`fake Forgejo: no job ${jobId}`);
  const repo = world.repoById(job.repoId);
  const sender = world.state.users[0];
  const payload: Record<string, unknown> = {
    action,
    workflow_job: giteaJobJson(world, base, job),
    repository: repo ? repoJson(world, base, repo) : null,
    sender: sender ? userJson(base, sender) : null,
  };
  const org = repo ? world.org(repo.owner) : undefined;
  if (org) payload.organization = { id: org.id, name: org.name, username: org.name, full_name: "", avatar_url: "", visibility: "public" };
  return payload;
}
