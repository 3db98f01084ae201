import { DONE_STATUSES } from "./model.js";
import type { FakeHook, FakeJob, FakeRepo, FakeRun, FakeRunner, FakeToken, FakeUser, JobStatus } from "./model.js";
import type { FakeWorld } from "./world.js";

/** JSON shapes exactly as Forgejo (swagger) or Gitea 1.24 send them. */

export function userJson(base: string, u: FakeUser): Record<string, unknown> {
  return {
    id: u.id,
    login: u.login,
    login_name: "",
    source_id: 0,
    full_name: "",
    email: u.email,
    avatar_url: `${base}/avatars/${u.id}`,
    html_url: `${base}/${u.login}`,
    language: "en-US",
    is_admin: u.isAdmin,
    last_login: "2026-01-01T00:00:00Z",
    created: "2025-01-01T00:00:00Z",
    restricted: false,
    active: true,
    prohibit_login: false,
    location: "",
    pronouns: "",
    website: "",
    description: "",
    visibility: "public",
    followers_count: 0,
    following_count: 0,
    starred_repos_count: 0,
    username: u.login,
  };
}

function ownerJson(world: FakeWorld, base: string, login: string): Record<string, unknown> {
  const u = world.user(login);
  if (u) return userJson(base, u);
  const o = world.org(login);
  return { id: o?.id ?? 0, login, full_name: "", email: "", avatar_url: "", html_url: `${base}/${login}`, username: login };
}

export function repoJson(world: FakeWorld, base: string, r: FakeRepo): Record<string, unknown> {
  return {
    id: r.id,
    owner: ownerJson(world, base, r.owner),
    name: r.name,
    full_name: `${r.owner}/${r.name}`,
    description: "",
    empty: false,
    private: false,
    fork: false,
    html_url: `${base}/${r.owner}/${r.name}`,
    url: `${base}/api/v1/repos/${r.owner}/${r.name}`,
    clone_url: `${base}/${r.owner}/${r.name}.git`,
    default_branch: "main",
    has_actions: r.actionsEnabled,
  };
}

export function forgejoJobJson(world: FakeWorld, j: FakeJob): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: j.id,
    repo_id: j.repoId,
    owner_id: j.ownerId,
    name: j.name,
    needs: j.needs.length ? j.needs : null,
    runs_on: j.runsOn,
    task_id: j.taskId,
    status: j.status,
  };
  if (world.features.runnersApi) {
    out.attempt = j.attempt;
    out.handle = j.handle;
  }
  if (world.features.runIdOnJobs) out.run_id = j.runId;
  return out;
}

/** Gitea's words for Forgejo's statuses (contracts §7.4): waiting → queued, blocked → waiting. */
export function giteaStatus(s: JobStatus): { status: string; conclusion?: string } {
  if (s === "waiting") return { status: "queued" };
  if (s === "blocked") return { status: "waiting" };
  if (s === "running") return { status: "in_progress" };
  if (DONE_STATUSES.includes(s)) return { status: "completed", conclusion: s };
  return { status: s };
}

export function giteaJobJson(world: FakeWorld, base: string, j: FakeJob): Record<string, unknown> {
  const repo = world.repoById(j.repoId);
  const run = world.run(j.runId);
  const full = repo ? `${repo.owner}/${repo.name}` : "";
  const { status, conclusion } = giteaStatus(j.status);
  const runner = world.state.runners.find((r) => r.id === j.runnerId);
  const out: Record<string, unknown> = {
    id: j.id,
    url: `${base}/api/v1/repos/${full}/actions/jobs/${j.id}`,
    html_url: `${base}/${full}/actions/runs/${j.runId}/jobs/${j.id}`,
    run_id: j.runId,
    run_url: `${base}/api/v1/repos/${full}/actions/runs/${j.runId}`,
    name: j.name,
    labels: j.runsOn,
    run_attempt: j.attempt,
    head_sha: run?.commitSha ?? "",
    head_branch: "main",
    status,
    steps: [],
    created_at: j.created,
    started_at: j.started ?? "0001-01-01T00:00:00Z",
    completed_at: j.stopped ?? "0001-01-01T00:00:00Z",
  };
  if (conclusion) out.conclusion = conclusion;
  if (runner) {
    out.runner_id = runner.id;
    out.runner_name = runner.name;
  }
  return out;
}

export function runnerStatus(r: FakeRunner): "offline" | "idle" | "active" {
  if (!r.online) return "offline";
  return r.busy ? "active" : "idle";
}

export function forgejoRunnerJson(r: FakeRunner): Record<string, unknown> {
  return {
    id: r.id,
    uuid: r.uuid,
    name: r.name,
    description: r.description,
    owner_id: r.ownerId,
    repo_id: r.repoId,
    version: r.version,
    status: runnerStatus(r),
    labels: r.labels,
    ephemeral: r.ephemeral,
  };
}

export function giteaRunnerJson(r: FakeRunner): Record<string, unknown> {
  return {
    id: r.id,
    name: r.name,
    status: r.online ? "online" : "offline",
    busy: r.busy,
    ephemeral: r.ephemeral,
    labels: r.labels.map((name, i) => ({ id: i, name, type: "custom" })),
  };
}

export function hookJson(kind: "forgejo" | "gitea", h: FakeHook): Record<string, unknown> {
  const config: Record<string, string> = { url: h.url, content_type: h.contentType };
  if (kind === "gitea") {
    // Gitea: no top-level url/content_type; everything in config.
    return {
      id: h.id,
      type: h.type,
      branch_filter: h.branchFilter,
      config: { ...config, http_method: "post", is_system_webhook: String(h.isSystem) },
      events: h.events,
      authorization_header: h.authorizationHeader,
      active: h.active,
      updated_at: h.updated,
      created_at: h.created,
    };
  }
  return {
    id: h.id,
    type: h.type,
    url: h.url,
    config,
    content_type: h.contentType,
    events: h.events,
    branch_filter: h.branchFilter,
    authorization_header: h.authorizationHeader,
    metadata: null,
    active: h.active,
    created_at: h.created,
    updated_at: h.updated,
  };
}

export function accessTokenJson(t: FakeToken, created: string): Record<string, unknown> {
  return { id: t.id, name: t.name, sha1: t.token, token_last_eight: t.token.slice(-8), scopes: t.scopes, created_at: created };
}

/** Forgejo's ActionRun (§5), as carried in action_run_* payloads. */
export function actionRunJson(world: FakeWorld, base: string, run: FakeRun): Record<string, unknown> {
  const repo = world.repoById(run.repoId);
  const trigger = world.user(run.triggerUser);
  const full = repo ? `${repo.owner}/${repo.name}` : "";
  const started = run.started ?? run.created;
  const stopped = run.stopped ?? started;
  return {
    id: run.id,
    title: run.title,
    repository: repo ? repoJson(world, base, repo) : null,
    workflow_id: run.workflowId,
    index_in_repo: run.indexInRepo,
    trigger_user: trigger ? userJson(base, trigger) : null,
    ScheduleID: 0,
    prettyref: "main",
    is_ref_deleted: false,
    commit_sha: run.commitSha,
    is_fork_pull_request: false,
    need_approval: false,
    approved_by: 0,
    event: run.event,
    event_payload: "{}",
    trigger_event: run.event,
    status: run.status,
    started,
    stopped,
    created: run.created,
    updated: stopped,
    duration: (Date.parse(stopped) - Date.parse(started)) * 1e6,
    html_url: `${base}/${full}/actions/runs/${run.indexInRepo}`,
  };
}
