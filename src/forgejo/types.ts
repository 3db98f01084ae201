import type { Scope } from "./scope.js";

/**
 * What GET /api/v1/version says about a server, and what it can do
 * (docs/upstream-contracts.md#server-version-and-features).
 */
export interface ServerInfo {
  kind: "forgejo" | "gitea";
  version: string;
  major: number;
  minor: number;
  /** GET …/actions/runners/jobs exists (Forgejo >= 11; Gitea has /actions/jobs instead). */
  jobsApi: boolean;
  /** Absent `labels` returns every job (Forgejo >= 14); older servers need labels. */
  jobsWithoutLabels: boolean;
  /** Runner list/get/delete and POST …/actions/runners with ephemeral (Forgejo >= 15). */
  runnersApi: boolean;
  /** Jobs carry attempt + handle; forgejo-runner one-job --handle works (Forgejo >= 15). */
  jobHandles: boolean;
  /** Runner list/get/delete exist, without REST registration (Forgejo >= 15, Gitea >= 1.24). */
  listRunnersApi?: boolean;
  /** Jobs carry run_id (Forgejo >= 16, Gitea). */
  jobRunIds?: boolean;
  /** The server sends workflow_job webhooks (Gitea >= 1.24). */
  workflowJobWebhook: boolean;
}

export interface ActionRunJob {
  id: number;
  run_id?: number;
  attempt?: number;
  handle?: string;
  repo_id?: number;
  owner_id?: number;
  name?: string;
  needs?: string[] | null;
  runs_on: string[];
  task_id?: number;
  status: string;
}

export interface ActionRunner {
  id: number;
  uuid?: string;
  name: string;
  status: "offline" | "idle" | "active" | string;
  labels: string[];
  ephemeral?: boolean;
  /** Gitea only. */
  busy?: boolean;
}

export interface RegisteredRunner {
  id: number;
  uuid: string;
  token: string;
}

export interface Hook {
  id: number;
  type: string;
  url: string;
  content_type?: string;
  events: string[];
  active: boolean;
}

export interface HookSpec {
  url: string;
  content_type: "json" | "form";
  events: string[];
  active: boolean;
  secret?: string | undefined;
}

/** The REST calls forgejo-nsc makes. Errors are ForgejoApiError; secrets never appear in them. */
export interface ForgejoApi {
  serverInfo(): Promise<ServerInfo>;
  registrationToken(scope: Scope): Promise<string>;
  registerRunner(scope: Scope, opts: { name: string; description?: string; ephemeral: boolean }): Promise<RegisteredRunner>;
  /** 404 counts as deleted; returns false then. */
  deleteRunner(scope: Scope, id: number): Promise<boolean>;
  /** undefined when the runner does not exist (404). */
  getRunner(scope: Scope, id: number): Promise<ActionRunner | undefined>;
  listRunners(scope: Scope): Promise<ActionRunner[]>;
  /** Waiting and running jobs; a `null` body is an empty list. */
  searchJobs(scope: Scope, labels?: readonly string[]): Promise<ActionRunJob[]>;
  listHooks(scope: Scope): Promise<Hook[]>;
  createHook(scope: Scope, spec: HookSpec): Promise<Hook>;
  editHook(scope: Scope, id: number, spec: HookSpec): Promise<Hook>;
  deleteHook(scope: Scope, id: number): Promise<void>;
}
