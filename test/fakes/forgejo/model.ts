/** The fake Forgejo's state. Plain data, so tests can read it and assert on it. */

export type FakeKind = "forgejo" | "gitea";

/** Forgejo's internal status names (contracts/forgejo-api.md §4). */
export type JobStatus = "blocked" | "waiting" | "running" | "success" | "failure" | "cancelled" | "skipped";
export const DONE_STATUSES: readonly JobStatus[] = ["success", "failure", "cancelled", "skipped"];

export interface FakeUser {
  id: number;
  login: string;
  password: string;
  isAdmin: boolean;
  email: string;
}

export interface FakeOrg {
  id: number;
  name: string;
  owners: string[];
}

export interface FakeRepo {
  id: number;
  owner: string;
  ownerId: number;
  name: string;
  actionsEnabled: boolean;
  /** Collaborators with admin rights (may manage hooks, not runners). */
  admins: string[];
}

export interface FakeToken {
  id: number;
  name: string;
  token: string;
  user: string;
  scopes: string[];
}

/** Where a runner, registration token or hook lives. `user` is the token's own user. */
export type FakeScope =
  | { level: "instance" }
  | { level: "organization"; owner: string }
  | { level: "repository"; owner: string; name: string }
  | { level: "user"; owner: string };

export function fakeScopeKey(s: FakeScope): string {
  switch (s.level) {
    case "instance":
      return "instance";
    case "organization":
      return `org:${s.owner}`;
    case "repository":
      return `repo:${s.owner}/${s.name}`;
    case "user":
      return `user:${s.owner}`;
  }
}

export interface FakeRun {
  id: number;
  repoId: number;
  indexInRepo: number;
  title: string;
  workflowId: string;
  event: string;
  commitSha: string;
  ref: string;
  triggerUser: string;
  status: JobStatus;
  created: string;
  started?: string | undefined;
  stopped?: string | undefined;
}

export interface FakeJob {
  id: number;
  runId: number;
  repoId: number;
  ownerId: number;
  name: string;
  runsOn: string[];
  needs: string[];
  status: JobStatus;
  /** 0 while never picked; incremented when a runner takes it. */
  attempt: number;
  /** Identifies the next (or current) attempt; a runner may ask for exactly this. */
  handle: string;
  taskId: number;
  runnerId?: number | undefined;
  created: string;
  started?: string | undefined;
  stopped?: string | undefined;
}

export interface FakeRunner {
  id: number;
  uuid: string;
  /** The runner secret (40 hex), as Forgejo would hash it; kept in clear for the simulation. */
  token: string;
  name: string;
  description: string;
  /** Owner (user/org) id for owner-level runners, 0 otherwise. */
  ownerId: number;
  /** Repository id for repo-level runners, 0 otherwise. */
  repoId: number;
  scopeKey: string;
  version: string;
  labels: string[];
  ephemeral: boolean;
  online: boolean;
  busy: boolean;
  deleted: boolean;
  /** rest: POST …/actions/runners. registration_token: the runner's own Register call. */
  registeredVia: "rest" | "registration_token";
  tasksTaken: number;
  currentJobId?: number | undefined;
}

export interface FakeRegistrationToken {
  scopeKey: string;
  token: string;
  active: boolean;
}

export interface FakeHook {
  id: number;
  scope: FakeScope;
  type: string;
  url: string;
  contentType: "json" | "form";
  secret: string;
  events: string[];
  active: boolean;
  branchFilter: string;
  authorizationHeader: string;
  /** Admin hooks: system hooks fire for every repository; default hooks are templates. */
  isSystem: boolean;
  created: string;
  updated: string;
}

export interface FakeCall {
  method: string;
  /** Path without the query string, e.g. /api/v1/admin/runners/jobs. */
  path: string;
  query: Record<string, string | string[]>;
  /** Request headers, lowercased, without `authorization`. */
  headers: Record<string, string>;
  /** How the caller authenticated. `token` is the PAT the fake recognised (test-only data). */
  auth: { present: boolean; scheme?: "token" | "bearer" | "basic" | "query"; token?: string; user?: string };
  body: unknown;
  /** Filled in once the fake answers. */
  status: number;
  at: string;
}

export interface FakeDelivery {
  hookId?: number | undefined;
  url: string;
  event: string;
  eventType: string;
  headers: Record<string, string>;
  body: string;
  status?: number;
  error?: string;
}

export interface FakeState {
  users: FakeUser[];
  orgs: FakeOrg[];
  repos: FakeRepo[];
  tokens: FakeToken[];
  runs: FakeRun[];
  jobs: FakeJob[];
  runners: FakeRunner[];
  registrationTokens: FakeRegistrationToken[];
  hooks: FakeHook[];
}
