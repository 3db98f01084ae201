import { randomBytes } from "node:crypto";
import { validTokenScope } from "./auth.js";
import { versionString } from "./features.js";
import type { FakeHook, FakeRunner, JobStatus } from "./model.js";
import { DONE_STATUSES, fakeScopeKey } from "./model.js";
import { Router, apiError, paged } from "./router.js";
import type { Ctx, Family, Reply, Route } from "./router.js";
import { accessTokenJson, forgejoJobJson, forgejoRunnerJson, giteaJobJson, giteaRunnerJson, hookJson, userJson } from "./serialize.js";

const SCOPES: { family: Exclude<Family, "public" | "basic">; prefix: string }[] = [
  { family: "admin", prefix: "/admin" },
  { family: "org", prefix: "/orgs/:org" },
  { family: "repo", prefix: "/repos/:owner/:repo" },
  { family: "user", prefix: "/user" },
];

const forgejo = (min: number) => (f: { kind: string; major: number }) => f.kind === "forgejo" && f.major >= min;
const gitea = (f: { kind: string; giteaActions: boolean }) => f.kind === "gitea" && f.giteaActions;
const anyGitea = (f: { kind: string }) => f.kind === "gitea";

/** Every /api/v1 route the fake serves, gated by server kind and version (contracts §0). */
export function buildRouter(): Router {
  const r = new Router();
  const add = (route: Route) => r.add(route);

  add({
    method: "GET",
    path: "/version",
    family: "public",
    handle: (ctx) => ({ status: 200, json: { version: versionString(ctx.world.kind, ctx.world.version) } }),
  });
  add({ method: "GET", path: "/user", family: "user", handle: (ctx) => ({ status: 200, json: userJson(ctx.base, ctx.user!) }) });
  add({ method: "POST", path: "/users/:username/tokens", family: "basic", handle: createAccessToken });

  for (const { family, prefix } of SCOPES) {
    const actions = family === "repo";
    // Registration token (GET since Forgejo 7; the admin one lives at /admin/runners/… until 15).
    if (family === "admin") {
      add({ method: "GET", path: "/admin/runners/registration-token", family, handle: registrationToken });
      add({
        method: "GET",
        path: "/admin/actions/runners/registration-token",
        family,
        when: (f) => forgejo(15)(f) || anyGitea(f),
        handle: registrationToken,
      });
      add({ method: "POST", path: "/admin/actions/runners/registration-token", family, when: anyGitea, handle: registrationToken });
    } else {
      add({ method: "GET", path: `${prefix}/actions/runners/registration-token`, family, actionsUnit: actions, handle: registrationToken });
      add({
        method: "POST",
        path: `${prefix}/actions/runners/registration-token`,
        family,
        actionsUnit: actions,
        when: anyGitea,
        handle: registrationToken,
      });
    }

    // Job search: Forgejo >= 11 (…/actions/runners/jobs), Gitea 1.25 (…/actions/jobs).
    if (family === "admin") {
      add({ method: "GET", path: "/admin/runners/jobs", family, when: forgejo(11), handle: searchJobs });
      add({ method: "GET", path: "/admin/actions/runners/jobs", family, when: forgejo(15), handle: searchJobs });
    } else {
      add({ method: "GET", path: `${prefix}/actions/runners/jobs`, family, actionsUnit: actions, when: forgejo(11), handle: searchJobs });
    }
    add({
      method: "GET",
      path: `${prefix}/actions/jobs`,
      family,
      actionsUnit: actions,
      when: (f) => gitea(f) && f.giteaJobsSearch,
      handle: giteaJobs,
    });

    // Runners: Forgejo >= 15 (with REST registration), Gitea 1.24 (list/get/delete only).
    const runnersWhen = (f: Parameters<typeof gitea>[0] & { major: number }) => forgejo(15)(f) || gitea(f);
    add({ method: "GET", path: `${prefix}/actions/runners`, family, actionsUnit: actions, when: runnersWhen, handle: listRunners });
    add({ method: "POST", path: `${prefix}/actions/runners`, family, actionsUnit: actions, when: forgejo(15), handle: registerRunner });
    add({ method: "GET", path: `${prefix}/actions/runners/:id`, family, actionsUnit: actions, when: runnersWhen, handle: getRunner });
    add({ method: "DELETE", path: `${prefix}/actions/runners/:id`, family, actionsUnit: actions, when: runnersWhen, handle: deleteRunner });

    // Hooks at every scope; repository hooks need a repo admin, not the owner.
    const role = family === "repo" ? "repo_admin" : undefined;
    add({ method: "GET", path: `${prefix}/hooks`, family, role, handle: listHooks });
    add({ method: "POST", path: `${prefix}/hooks`, family, role, handle: createHook });
    add({
      method: "GET",
      path: `${prefix}/hooks/:id`,
      family,
      role,
      handle: (ctx) => withHook(ctx, (h) => ({ status: 200, json: hookJson(ctx.world.kind, h) })),
    });
    add({ method: "PATCH", path: `${prefix}/hooks/:id`, family, role, handle: editHook });
    add({ method: "DELETE", path: `${prefix}/hooks/:id`, family, role, handle: deleteHook });
  }
  return r;
}

// ---- registration tokens and runners ----

function registrationToken(ctx: Ctx): Reply {
  // Forgejo returns the latest active token (stable); Gitea's POST mints a new one.
  return { status: 200, json: { token: ctx.world.registrationToken(ctx.scope, ctx.method === "POST") } };
}

function listRunners(ctx: Ctx): Reply {
  const world = ctx.world;
  const live = world.liveRunners().sort((a, b) => b.id - a.id);
  if (world.kind === "gitea") {
    const mine = ctx.scope.level === "instance" ? live : live.filter((r) => world.runnerOwnedBy(r, ctx.scope));
    const { items, headers } = paged(ctx, "/actions/runners", mine);
    return { status: 200, json: { runners: items.map(giteaRunnerJson), total_count: mine.length }, headers };
  }
  const visible = ctx.query.get("visible") === "true";
  const mine = live.filter((r) => (visible ? world.runnerVisibleFrom(r, ctx.scope) : world.runnerOwnedBy(r, ctx.scope)));
  const { items, headers } = paged(ctx, "/actions/runners", mine);
  return { status: 200, json: items.map(forgejoRunnerJson), headers };
}

function findRunner(ctx: Ctx): FakeRunner | undefined {
  const id = Number(ctx.params.id);
  if (!Number.isInteger(id)) return undefined;
  const r = ctx.world.liveRunners().find((x) => x.id === id);
  return r && ctx.world.runnerVisibleFrom(r, ctx.scope) ? r : undefined;
}

function getRunner(ctx: Ctx): Reply {
  const r = findRunner(ctx);
  if (!r) return apiError(ctx, 404, "Runner not found");
  return { status: 200, json: ctx.world.kind === "gitea" ? giteaRunnerJson(r) : forgejoRunnerJson(r) };
}

function deleteRunner(ctx: Ctx): Reply {
  const r = findRunner(ctx);
  // Visible but owned by another scope (a global runner via a repo path) is a 404 too.
  if (!r || (ctx.scope.level !== "instance" && !ctx.world.runnerOwnedBy(r, ctx.scope))) return apiError(ctx, 404, "Runner not found");
  ctx.world.deleteRunner(r);
  return { status: 204 };
}

function registerRunner(ctx: Ctx): Reply {
  const body = (ctx.body ?? {}) as { name?: unknown; description?: unknown; ephemeral?: unknown };
  if (typeof body.name !== "string" || body.name === "") {
    return { status: 422, json: [{ fieldNames: ["Name"], classification: "RequiredError", message: "Required" }] };
  }
  const r = ctx.world.registerRunner(ctx.scope, {
    name: body.name,
    description: typeof body.description === "string" ? body.description : "",
    ephemeral: body.ephemeral === true,
    via: "rest",
  });
  return { status: 201, json: { id: r.id, uuid: r.uuid, token: r.token } };
}

// ---- jobs ----

/** Forgejo's label rule (§4), including the v11–v13 "no labels = nothing" and the JSON null. */
function searchJobs(ctx: Ctx): Reply {
  const f = ctx.world.features;
  const has = ctx.query.has("labels");
  const raw = ctx.query.get("labels") ?? "";
  let jobs = ctx.world.jobsInScope(ctx.scope).filter((j) => j.status === "waiting" || j.status === "running");
  if (f.jobsNeedLabels || has) {
    if (!f.jobsNeedLabels && raw === "") {
      jobs = jobs.filter((j) => j.runsOn.length === 0);
    } else {
      const set = new Set(raw.split(","));
      jobs = jobs.filter((j) => j.runsOn.length > 0 && j.runsOn.every((l) => set.has(l)));
    }
  }
  jobs.sort((a, b) => b.id - a.id);
  return { status: 200, json: jobs.length ? jobs.map((j) => forgejoJobJson(ctx.world, j)) : null };
}

const GITEA_STATUS: Record<string, JobStatus[]> = {
  pending: ["blocked"],
  waiting: ["blocked"],
  requested: ["blocked"],
  action_required: ["blocked"],
  queued: ["waiting"],
  in_progress: ["running"],
  completed: [...DONE_STATUSES],
  failure: ["failure"],
  success: ["success"],
  skipped: ["skipped"],
  neutral: ["skipped"],
  cancelled: ["cancelled"],
  timed_out: ["cancelled"],
};

function giteaJobs(ctx: Ctx): Reply {
  const wanted: JobStatus[] = [];
  for (const s of ctx.query.getAll("status")) {
    const mapped = GITEA_STATUS[s];
    if (!mapped) return apiError(ctx, 400, `Invalid status ${s}`);
    wanted.push(...mapped);
  }
  const jobs = ctx.world
    .jobsInScope(ctx.scope)
    .filter((j) => wanted.length === 0 || wanted.includes(j.status))
    .sort((a, b) => b.id - a.id);
  const { items, headers } = paged(ctx, "/actions/jobs", jobs);
  return { status: 200, json: { jobs: items.map((j) => giteaJobJson(ctx.world, ctx.base, j)), total_count: jobs.length }, headers };
}

// ---- hooks ----

const FORGEJO_TYPES = [
  "forgejo",
  "gitea",
  "gogs",
  "slack",
  "discord",
  "dingtalk",
  "telegram",
  "msteams",
  "feishu",
  "matrix",
  "wechatwork",
  "packagist",
  "sourcehut_builds",
];
const GITEA_TYPES = ["gitea", "gogs", "slack", "discord", "dingtalk", "telegram", "msteams", "feishu", "matrix", "wechatwork", "packagist"];
const COMMON_EVENTS = [
  "create",
  "delete",
  "fork",
  "push",
  "issues",
  "issues_only",
  "issue_assign",
  "issue_label",
  "issue_milestone",
  "issue_comment",
  "pull_request",
  "pull_request_only",
  "pull_request_assign",
  "pull_request_label",
  "pull_request_milestone",
  "pull_request_comment",
  "pull_request_review",
  "pull_request_sync",
  "pull_request_review_request",
  "wiki",
  "repository",
  "release",
  "package",
];
const FORGEJO_EVENTS = [...COMMON_EVENTS, "action_run_failure", "action_run_recover", "action_run_success"];
const GITEA_EVENTS = [...COMMON_EVENTS, "status", "workflow_job", "workflow_run"];
/** PATCH never changes these on Forgejo (§6 quirks). */
const FROZEN_ON_EDIT = ["package", "action_run_failure", "action_run_recover", "action_run_success"];

/**
 * What the forge stores for the requested events: per-event flags, listed back by name. Forgejo's
 * routers/api/v1/utils/hook.go sets the pull request flags from "pull_request" (pullHook) and the
 * issue flags from "issues" (issuesHook), "*_only" set the plain flag, and EventsArray
 * (models/webhook/webhook.go EventCheckers) lists the review flag as approved/rejected and the
 * comment flag as pull_request_comment + pull_request_review_comment. Gitea 1.25.5
 * (seen on the real server) does the same but lists the review flag as "pull_request_review".
 */
function storedEvents(kind: string, requested: readonly string[]): string[] {
  const has = (e: string) => requested.includes(e);
  const issue = (sub: string) => has(sub) || has("issues");
  const pull = (sub: string) => has(sub) || has("pull_request");
  const flags: [boolean, string[]][] = [
    [has("create"), ["create"]],
    [has("delete"), ["delete"]],
    [has("fork"), ["fork"]],
    [has("push"), ["push"]],
    [issue("issues_only"), ["issues"]],
    [issue("issue_assign"), ["issue_assign"]],
    [issue("issue_label"), ["issue_label"]],
    [issue("issue_milestone"), ["issue_milestone"]],
    [issue("issue_comment"), ["issue_comment"]],
    [pull("pull_request_only"), ["pull_request"]],
    [pull("pull_request_assign"), ["pull_request_assign"]],
    [pull("pull_request_label"), ["pull_request_label"]],
    [pull("pull_request_milestone"), ["pull_request_milestone"]],
    // Forgejo's EventCheckers list review_comment under the comment flag (HasPullRequestCommentEvent).
    [pull("pull_request_comment"), kind === "forgejo" ? ["pull_request_comment", "pull_request_review_comment"] : ["pull_request_comment"]],
    [
      pull("pull_request_review"),
      kind === "forgejo" ? ["pull_request_review_approved", "pull_request_review_rejected"] : ["pull_request_review"],
    ],
    [pull("pull_request_sync"), ["pull_request_sync"]],
    [pull("pull_request_review_request"), ["pull_request_review_request"]],
  ];
  const out = flags.filter(([on]) => on).flatMap(([, names]) => names);
  const expanded = new Set(
    ["create", "delete", "fork", "push", "issues", "issues_only", "issue_assign", "issue_label", "issue_milestone", "issue_comment"].concat(
      COMMON_EVENTS.filter((e) => e.startsWith("pull_request")),
    ),
  );
  return [...out, ...requested.filter((e) => !expanded.has(e))];
}

function knownEvents(ctx: Ctx, events: unknown): string[] {
  const valid = ctx.world.kind === "forgejo" ? FORGEJO_EVENTS : GITEA_EVENTS;
  const list = Array.isArray(events) ? events.filter((e): e is string => typeof e === "string") : [];
  // Unknown names are ignored silently, duplicates collapse.
  return storedEvents(ctx.world.kind, [...new Set(list.filter((e) => valid.includes(e)))]);
}

function validUrl(u: unknown): u is string {
  if (typeof u !== "string") return false;
  try {
    const p = new URL(u);
    return p.protocol === "http:" || p.protocol === "https:";
  } catch {
    return false;
  }
}

function listHooks(ctx: Ctx): Reply {
  const hooks = ctx.world.hooksInScope(ctx.scope).sort((a, b) => a.id - b.id);
  const { items, headers } = paged(ctx, "/hooks", hooks);
  return { status: 200, json: items.map((h) => hookJson(ctx.world.kind, h)), headers };
}

function createHook(ctx: Ctx): Reply {
  const body = (ctx.body ?? {}) as Record<string, unknown>;
  const types = ctx.world.kind === "forgejo" ? FORGEJO_TYPES : GITEA_TYPES;
  if (typeof body.type !== "string" || !types.includes(body.type)) return apiError(ctx, 422, "Invalid hook type");
  const config = (typeof body.config === "object" && body.config !== null ? body.config : {}) as Record<string, unknown>;
  if (!config.url) return apiError(ctx, 422, "Missing config option: url");
  if (!validUrl(config.url)) return apiError(ctx, 422, "Invalid url");
  if (!config.content_type) return apiError(ctx, 422, "Missing config option: content_type");
  if (config.content_type !== "json" && config.content_type !== "form") return apiError(ctx, 422, "Invalid content type");
  const events = knownEvents(ctx, body.events);
  const now = ctx.world.iso();
  const hook: FakeHook = {
    id: ctx.world.nextHookId(),
    scope: ctx.scope,
    type: body.type,
    url: config.url,
    contentType: config.content_type,
    secret: typeof config.secret === "string" ? config.secret : "",
    events: events.length ? events : ["push"],
    // Omitted `active` creates an inactive hook.
    active: body.active === true,
    branchFilter: typeof body.branch_filter === "string" ? body.branch_filter : "",
    authorizationHeader: typeof body.authorization_header === "string" ? body.authorization_header : "",
    isSystem: ctx.scope.level === "instance" && config.is_system_webhook === "true",
    created: now,
    updated: now,
  };
  ctx.world.state.hooks.push(hook);
  return { status: 201, json: hookJson(ctx.world.kind, hook) };
}

function withHook(ctx: Ctx, fn: (h: FakeHook) => Reply): Reply {
  const id = Number(ctx.params.id);
  const hook = ctx.world.state.hooks.find((h) => h.id === id);
  // Admin routes see only system hooks through GET /admin/hooks, but can address default hooks by id.
  const inScope = hook && fakeScopeKey(hook.scope) === fakeScopeKey(ctx.scope);
  return hook && inScope ? fn(hook) : apiError(ctx, 404, NOT_FOUND_HOOK);
}
const NOT_FOUND_HOOK = "The target couldn't be found.";

function editHook(ctx: Ctx): Reply {
  return withHook(ctx, (hook) => {
    const body = (ctx.body ?? {}) as Record<string, unknown>;
    const config = (typeof body.config === "object" && body.config !== null ? body.config : {}) as Record<string, unknown>;
    if (config.url !== undefined) {
      if (!validUrl(config.url)) return apiError(ctx, 422, "Invalid url");
      hook.url = config.url;
    }
    if (config.content_type !== undefined) {
      if (config.content_type !== "json" && config.content_type !== "form") return apiError(ctx, 422, "Invalid content type");
      hook.contentType = config.content_type;
    }
    // config.secret is ignored on edit: the secret can only be set at creation.
    let events = knownEvents(ctx, body.events);
    if (events.length === 0) events = ["push"];
    if (ctx.world.kind === "forgejo") {
      const kept = hook.events.filter((e) => FROZEN_ON_EDIT.includes(e));
      events = [...events.filter((e) => !FROZEN_ON_EDIT.includes(e)), ...kept];
    }
    hook.events = events;
    hook.branchFilter = typeof body.branch_filter === "string" ? body.branch_filter : "";
    hook.authorizationHeader = typeof body.authorization_header === "string" ? body.authorization_header : "";
    if (typeof body.active === "boolean") hook.active = body.active;
    hook.updated = ctx.world.iso();
    return { status: 200, json: hookJson(ctx.world.kind, hook) };
  });
}

function deleteHook(ctx: Ctx): Reply {
  return withHook(ctx, (hook) => {
    ctx.world.state.hooks = ctx.world.state.hooks.filter((h) => h !== hook);
    return { status: 204 };
  });
}

// ---- PAT minting ----

function createAccessToken(ctx: Ctx): Reply {
  const doer = ctx.auth.user;
  if (!doer || !ctx.auth.basicPassword) return apiError(ctx, 401, "auth required");
  const target = ctx.world.user(ctx.params.username ?? "");
  if (!target) return apiError(ctx, 404, "The target couldn't be found.");
  if (!doer.isAdmin && doer.id !== target.id) return apiError(ctx, 403, "doer should be the site admin or be same as the contextUser");
  const body = (ctx.body ?? {}) as { name?: unknown; scopes?: unknown };
  if (typeof body.name !== "string" || body.name === "") {
    return { status: 422, json: [{ fieldNames: ["Name"], classification: "RequiredError", message: "Required" }] };
  }
  const scopes = Array.isArray(body.scopes) ? body.scopes.filter((s): s is string => typeof s === "string") : [];
  if (scopes.length === 0) return apiError(ctx, 400, "access token must have a scope");
  if (!scopes.every(validTokenScope)) return apiError(ctx, 400, "invalid access token scope provided");
  if (ctx.world.state.tokens.some((t) => t.user === target.login && t.name === body.name)) {
    return apiError(ctx, 400, "access token name has been used already");
  }
  const t = ctx.world.addToken(randomBytes(20).toString("hex"), target.login, scopes, body.name);
  return { status: 201, json: accessTokenJson(t, ctx.world.iso()) };
}
