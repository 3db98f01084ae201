import { randomBytes, randomUUID } from "node:crypto";
import { recordSecrets } from "../../helpers/secrets.js";
import { featuresOf } from "./features.js";
import type { FakeFeatures } from "./features.js";
import { DONE_STATUSES, fakeScopeKey } from "./model.js";
import type {
  FakeHook,
  FakeJob,
  FakeKind,
  FakeRepo,
  FakeRun,
  FakeRunner,
  FakeScope,
  FakeState,
  FakeToken,
  FakeUser,
  JobStatus,
} from "./model.js";

/** Something that happened that a webhook may report. */
export type WorldEvent =
  | { type: "job"; job: FakeJob; action: "queued" | "waiting" | "in_progress" | "completed" }
  | { type: "run_finished"; run: FakeRun; action: "success" | "failure"; recover: boolean };

export interface UserSpec {
  login: string;
  password?: string;
  isAdmin?: boolean;
}
export interface OrgSpec {
  name: string;
  owners?: string[];
}
export interface RepoSpec {
  owner: string;
  name: string;
  actionsEnabled?: boolean;
  admins?: string[];
}
export interface AddJobSpec {
  /** "owner/name"; created (with an org as owner unless a user has that login) when unknown. */
  repo: string;
  runs_on: string[];
  name?: string;
  /** Put the job in an existing run (jobs of one run finish the run together). */
  runId?: number;
  /** blocked = waiting on needs or approval: never listed, never assigned. */
  status?: "waiting" | "blocked";
  needs?: string[];
  workflowId?: string;
}
export interface ConnectSpec {
  /** A runner registered over REST (or earlier through a registration token). */
  uuid?: string;
  /** Checked when given: a runner that sends the wrong secret is refused. */
  token?: string;
  /** Registers a new runner the way `forgejo-runner register` does. */
  registrationToken?: string;
  name?: string;
  labels: string[];
  ephemeral?: boolean;
  /** forgejo-runner one-job --handle: take exactly this job attempt (Forgejo >= 15). */
  handle?: string;
  version?: string;
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomAlnum(n: number): string {
  const bytes = randomBytes(n);
  let s = "";
  for (const b of bytes) s += ALNUM[b % ALNUM.length];
  return s;
}

/** State plus the rules Forgejo applies to it (scopes, visibility, label matching, ephemeral runners). */
export class FakeWorld {
  readonly state: FakeState = {
    users: [],
    orgs: [],
    repos: [],
    tokens: [],
    runs: [],
    jobs: [],
    runners: [],
    registrationTokens: [],
    hooks: [],
  };
  features: FakeFeatures;
  private seq = { principal: 0, repo: 0, run: 0, job: 0, task: 0, runner: 0, hook: 0, token: 0 };

  constructor(
    readonly kind: FakeKind,
    public version: string,
    private readonly now: () => Date,
    private readonly emit: (ev: WorldEvent) => void,
  ) {
    this.features = featuresOf(kind, version);
  }

  setVersion(version: string): void {
    this.version = version;
    this.features = featuresOf(this.kind, version);
  }

  iso(): string {
    return this.now().toISOString();
  }

  // ---- principals and repositories ----

  addUser(spec: UserSpec): FakeUser {
    const existing = this.user(spec.login);
    if (existing) return existing;
    const u: FakeUser = {
      id: ++this.seq.principal,
      login: spec.login,
      password: spec.password ?? `${spec.login}-password`,
      isAdmin: spec.isAdmin ?? false,
      email: `${spec.login}@example.invalid`,
    };
    this.state.users.push(u);
    return u;
  }

  addOrg(spec: OrgSpec): void {
    const existing = this.org(spec.name);
    if (existing) {
      for (const o of spec.owners ?? []) if (!existing.owners.includes(o)) existing.owners.push(o);
      return;
    }
    this.state.orgs.push({ id: ++this.seq.principal, name: spec.name, owners: [...(spec.owners ?? [])] });
  }

  addRepo(spec: RepoSpec): FakeRepo {
    const existing = this.repo(spec.owner, spec.name);
    if (existing) return existing;
    if (!this.user(spec.owner) && !this.org(spec.owner)) this.addOrg({ name: spec.owner });
    const r: FakeRepo = {
      id: ++this.seq.repo,
      owner: spec.owner,
      ownerId: this.ownerId(spec.owner) ?? 0,
      name: spec.name,
      actionsEnabled: spec.actionsEnabled ?? true,
      admins: [...(spec.admins ?? [])],
    };
    this.state.repos.push(r);
    return r;
  }

  addToken(token: string, user: string, scopes: string[], name?: string): FakeToken {
    const t: FakeToken = { id: ++this.seq.token, name: name ?? `token-${this.seq.token}`, token, user, scopes: [...scopes] };
    this.state.tokens.push(t);
    return t;
  }

  user(login: string): FakeUser | undefined {
    return this.state.users.find((u) => u.login.toLowerCase() === login.toLowerCase());
  }
  org(name: string) {
    return this.state.orgs.find((o) => o.name.toLowerCase() === name.toLowerCase());
  }
  repo(owner: string, name: string): FakeRepo | undefined {
    return this.state.repos.find((r) => r.owner.toLowerCase() === owner.toLowerCase() && r.name.toLowerCase() === name.toLowerCase());
  }
  repoById(id: number): FakeRepo | undefined {
    return this.state.repos.find((r) => r.id === id);
  }
  ownerId(login: string): number | undefined {
    return this.user(login)?.id ?? this.org(login)?.id;
  }
  ownerName(id: number): string {
    return this.state.users.find((u) => u.id === id)?.login ?? this.state.orgs.find((o) => o.id === id)?.name ?? "";
  }

  isOrgOwner(org: string, login: string): boolean {
    return this.org(org)?.owners.some((o) => o.toLowerCase() === login.toLowerCase()) ?? false;
  }
  /** reqOwner: the repository's owner (or an owner of its org), or a site admin. */
  isRepoOwner(repo: FakeRepo, user: FakeUser): boolean {
    return user.isAdmin || repo.owner.toLowerCase() === user.login.toLowerCase() || this.isOrgOwner(repo.owner, user.login);
  }
  /** reqAdmin: repository owner, admin collaborator or site admin. */
  isRepoAdmin(repo: FakeRepo, user: FakeUser): boolean {
    return this.isRepoOwner(repo, user) || repo.admins.some((a) => a.toLowerCase() === user.login.toLowerCase());
  }

  // ---- registration tokens (stable per scope; Gitea's POST rotates) ----

  registrationToken(scope: FakeScope, rotate = false): string {
    const key = fakeScopeKey(scope);
    let current = this.state.registrationTokens.find((t) => t.scopeKey === key && t.active);
    if (current && rotate) {
      current.active = false;
      current = undefined;
    }
    if (!current) {
      current = { scopeKey: key, token: randomAlnum(43), active: true };
      // Every minted credential joins the suite-wide secret scan (test/global-setup.ts).
      recordSecrets([current.token]);
      this.state.registrationTokens.push(current);
    }
    return current.token;
  }

  // ---- runners ----

  /** Owner id / repo id a runner registered at this scope carries. */
  private placement(scope: FakeScope): { ownerId: number; repoId: number } {
    switch (scope.level) {
      case "instance":
        return { ownerId: 0, repoId: 0 };
      case "organization":
      case "user":
        return { ownerId: this.ownerId(scope.owner) ?? 0, repoId: 0 };
      case "repository":
        return { ownerId: 0, repoId: this.repo(scope.owner, scope.name)?.id ?? 0 };
    }
  }

  registerRunner(
    scope: FakeScope,
    opts: { name: string; description?: string; ephemeral: boolean; via: FakeRunner["registeredVia"] },
  ): FakeRunner {
    const token = randomBytes(20).toString("hex");
    recordSecrets([token]);
    const r: FakeRunner = {
      id: ++this.seq.runner,
      uuid: randomUUID(),
      token,
      name: opts.name,
      description: opts.description ?? "",
      ...this.placement(scope),
      scopeKey: fakeScopeKey(scope),
      version: "",
      labels: [],
      ephemeral: opts.ephemeral,
      online: false,
      busy: false,
      deleted: false,
      registeredVia: opts.via,
      tasksTaken: 0,
    };
    this.state.runners.push(r);
    return r;
  }

  liveRunners(): FakeRunner[] {
    return this.state.runners.filter((r) => !r.deleted);
  }

  runnerOwnedBy(r: FakeRunner, scope: FakeScope): boolean {
    const p = this.placement(scope);
    if (scope.level === "repository") return r.repoId === p.repoId;
    return r.ownerId === p.ownerId && r.repoId === 0;
  }

  runnerVisibleFrom(r: FakeRunner, scope: FakeScope): boolean {
    const global = r.ownerId === 0 && r.repoId === 0;
    switch (scope.level) {
      case "instance":
        return true;
      case "organization":
      case "user":
        return global || (r.repoId === 0 && r.ownerId === this.placement(scope).ownerId);
      case "repository": {
        const repo = this.repo(scope.owner, scope.name);
        return global || r.repoId === repo?.id || (r.repoId === 0 && r.ownerId === repo?.ownerId);
      }
    }
  }

  deleteRunner(r: FakeRunner): void {
    r.deleted = true;
    r.online = false;
    // Forgejo overwrites the uuid so the old credentials stop working.
    r.uuid = `deleted-${r.uuid}`;
  }

  /** The runner protocol's Register + Declare + FetchTask, as a forgejo-runner would do them. */
  connectRunner(spec: ConnectSpec): { runner: FakeRunner; job?: FakeJob } {
    let runner: FakeRunner | undefined;
    if (spec.registrationToken !== undefined) {
      const t = this.state.registrationTokens.find((x) => x.token === spec.registrationToken);
      if (!t || !t.active) throw new Error("fake Forgejo: runner registration token is invalid or was rotated");
      const ephemeralOk = this.features.runnersApi || this.features.giteaActions;
      runner = this.registerRunner(scopeFromKey(t.scopeKey), {
        name: spec.name ?? `runner-${this.seq.runner + 1}`,
        ephemeral: Boolean(spec.ephemeral) && ephemeralOk,
        via: "registration_token",
      });
    } else if (spec.uuid !== undefined) {
      runner = this.state.runners.find((r) => r.uuid === spec.uuid && !r.deleted);
      if (!runner) throw new Error(`fake Forgejo: no runner with uuid ${spec.uuid} (deleted, or never registered)`);
      if (spec.token !== undefined && spec.token !== runner.token)
        throw new Error("fake Forgejo: runner token does not match (unauthenticated)");
    } else {
      throw new Error("fake Forgejo: connectRunner needs uuid or registrationToken");
    }
    runner.labels = [...spec.labels];
    runner.version = spec.version ?? "v12.6.4";
    runner.online = true;
    const job = this.fetchTask(runner, spec.handle);
    return job ? { runner, job } : { runner };
  }

  /** FetchTask: hands the runner the newest matching waiting job it may take, if any. */
  fetchTask(runner: FakeRunner, handle?: string): FakeJob | undefined {
    if (runner.deleted || runner.busy) return undefined;
    // An ephemeral runner is handed at most one task (§8.5).
    if (runner.ephemeral && runner.tasksTaken > 0) return undefined;
    const useHandle = handle !== undefined && this.features.runnersApi;
    const candidates = this.state.jobs
      .filter((j) => j.status === "waiting")
      .filter((j) => this.runnerCoversRepo(runner, j.repoId))
      .filter((j) => j.runsOn.every((l) => runner.labels.includes(l)))
      .filter((j) => !useHandle || j.handle === handle)
      .sort((a, b) => a.id - b.id);
    const job = candidates[0];
    if (!job) return undefined;
    job.status = "running";
    job.attempt += 1;
    job.taskId = ++this.seq.task;
    job.runnerId = runner.id;
    job.started = this.iso();
    runner.busy = true;
    runner.tasksTaken += 1;
    runner.currentJobId = job.id;
    const run = this.run(job.runId);
    if (run && run.status !== "running") {
      run.status = "running";
      run.started ??= this.iso();
    }
    this.emit({ type: "job", job, action: "in_progress" });
    return job;
  }

  /**
   * Shortcut for tests that only need "a runner took this job": a connected instance-level runner
   * with exactly the job's labels takes it (the same path FetchTask uses).
   */
  takeJob(id: number): { runner: FakeRunner; job: FakeJob } {
    const job = this.mustJob(id);
    if (job.status !== "waiting") throw new Error(`fake Forgejo: job ${id} is ${job.status}, not waiting`);
    const runner = this.registerRunner(
      { level: "instance" },
      { name: `sim-runner-${this.seq.runner + 1}`, ephemeral: false, via: "registration_token" },
    );
    runner.labels = [...job.runsOn];
    runner.version = "v12.6.4";
    runner.online = true;
    const taken = this.fetchTask(runner, this.features.runnersApi ? job.handle : undefined);
    if (taken?.id !== id)
      throw new Error(`fake Forgejo: job ${id} could not be assigned (an older waiting job with the same labels went first)`);
    return { runner, job: taken };
  }

  private runnerCoversRepo(runner: FakeRunner, repoId: number): boolean {
    if (runner.ownerId === 0 && runner.repoId === 0) return true;
    if (runner.repoId !== 0) return runner.repoId === repoId;
    return this.repoById(repoId)?.ownerId === runner.ownerId;
  }

  // ---- runs and jobs ----

  run(id: number): FakeRun | undefined {
    return this.state.runs.find((r) => r.id === id);
  }
  job(id: number): FakeJob | undefined {
    return this.state.jobs.find((j) => j.id === id);
  }

  addJob(spec: AddJobSpec): FakeJob {
    const [owner, name] = spec.repo.split("/");
    if (!owner || !name) throw new Error(`fake Forgejo: addJob repo must be "owner/name", got ${JSON.stringify(spec.repo)}`);
    const repo = this.addRepo({ owner, name });
    let run = spec.runId !== undefined ? this.run(spec.runId) : undefined;
    if (spec.runId !== undefined && !run) throw new Error(`fake Forgejo: no run ${spec.runId}`);
    if (!run) {
      const index = this.state.runs.filter((r) => r.repoId === repo.id).length + 1;
      run = {
        id: ++this.seq.run,
        repoId: repo.id,
        indexInRepo: index,
        title: `run ${index}`,
        workflowId: spec.workflowId ?? "ci.yml",
        event: "push",
        commitSha: randomBytes(20).toString("hex"),
        ref: "refs/heads/main",
        triggerUser: this.state.users[0]?.login ?? "admin",
        status: "waiting",
        created: this.iso(),
      };
      this.state.runs.push(run);
    }
    const job: FakeJob = {
      id: ++this.seq.job,
      runId: run.id,
      repoId: repo.id,
      ownerId: repo.ownerId,
      name: spec.name ?? `job-${this.seq.job}`,
      runsOn: [...spec.runs_on],
      needs: [...(spec.needs ?? [])],
      status: spec.status ?? "waiting",
      attempt: 0,
      handle: randomUUID(),
      taskId: 0,
      created: this.iso(),
    };
    this.state.jobs.push(job);
    this.emit({ type: "job", job, action: job.status === "blocked" ? "waiting" : "queued" });
    return job;
  }

  unblockJob(id: number): FakeJob {
    const job = this.mustJob(id);
    if (job.status !== "blocked") throw new Error(`fake Forgejo: job ${id} is ${job.status}, not blocked`);
    job.status = "waiting";
    this.emit({ type: "job", job, action: "queued" });
    return job;
  }

  /** A re-run: the job waits again under a new handle; the attempt counter goes up when picked. */
  rerunJob(id: number): FakeJob {
    const job = this.mustJob(id);
    job.status = "waiting";
    job.handle = randomUUID();
    job.runnerId = undefined;
    job.stopped = undefined;
    const run = this.run(job.runId);
    if (run) {
      run.status = "waiting";
      run.stopped = undefined;
    }
    this.emit({ type: "job", job, action: "queued" });
    return job;
  }

  /** The runner reports a final result: the job is done; an ephemeral runner is deleted (§8.5). */
  finishJob(id: number, result: "success" | "failure" | "cancelled" | "skipped" = "success"): FakeJob {
    const job = this.mustJob(id);
    if (DONE_STATUSES.includes(job.status)) throw new Error(`fake Forgejo: job ${id} is already ${job.status}`);
    job.status = result;
    job.stopped = this.iso();
    const runner = this.state.runners.find((r) => r.id === job.runnerId);
    if (runner) {
      runner.busy = false;
      runner.currentJobId = undefined;
      if (runner.ephemeral) this.deleteRunner(runner);
    }
    this.emit({ type: "job", job, action: "completed" });
    this.maybeFinishRun(job.runId);
    return job;
  }

  private maybeFinishRun(runId: number): void {
    const run = this.run(runId);
    if (!run) return;
    const jobs = this.state.jobs.filter((j) => j.runId === runId);
    if (!jobs.every((j) => DONE_STATUSES.includes(j.status))) return;
    const status: JobStatus = jobs.some((j) => j.status === "failure")
      ? "failure"
      : jobs.some((j) => j.status === "cancelled")
        ? "cancelled"
        : "success";
    const previous = this.state.runs
      .filter((r) => r.id !== run.id && r.repoId === run.repoId && r.workflowId === run.workflowId && DONE_STATUSES.includes(r.status))
      .sort((a, b) => b.id - a.id)[0];
    run.status = status;
    run.stopped = this.iso();
    const success = status === "success";
    this.emit({
      type: "run_finished",
      run,
      action: success ? "success" : "failure",
      recover: success && previous !== undefined && previous.status !== "success",
    });
  }

  private mustJob(id: number): FakeJob {
    const job = this.job(id);
    if (!job) throw new Error(`fake Forgejo: no job ${id}`);
    return job;
  }

  /** Jobs whose repository the scope covers (§4 "Jobs considered"). */
  jobsInScope(scope: FakeScope): FakeJob[] {
    switch (scope.level) {
      case "instance":
        return [...this.state.jobs];
      case "organization":
      case "user": {
        const ownerId = this.ownerId(scope.owner);
        return this.state.jobs.filter((j) => j.ownerId === ownerId);
      }
      case "repository": {
        const repo = this.repo(scope.owner, scope.name);
        return this.state.jobs.filter((j) => j.repoId === repo?.id);
      }
    }
  }

  // ---- hooks ----

  nextHookId(): number {
    return ++this.seq.hook;
  }

  hooksInScope(scope: FakeScope): FakeHook[] {
    const key = fakeScopeKey(scope);
    return this.state.hooks.filter((h) => fakeScopeKey(h.scope) === key && (scope.level !== "instance" || h.isSystem));
  }

  /** Hooks that fire for an event in this repository: its own, its owner's, and active system hooks. */
  hooksForRepo(repoId: number): FakeHook[] {
    const repo = this.repoById(repoId);
    if (!repo) return [];
    return this.state.hooks.filter((h) => {
      if (!h.active) return false;
      switch (h.scope.level) {
        case "instance":
          return h.isSystem;
        case "organization":
        case "user":
          return h.scope.owner.toLowerCase() === repo.owner.toLowerCase();
        case "repository":
          return h.scope.owner.toLowerCase() === repo.owner.toLowerCase() && h.scope.name.toLowerCase() === repo.name.toLowerCase();
      }
    });
  }
}

export function scopeFromKey(key: string): FakeScope {
  if (key === "instance") return { level: "instance" };
  const [kind, rest = ""] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
  if (kind === "org") return { level: "organization", owner: rest };
  if (kind === "user") return { level: "user", owner: rest };
  const [owner = "", name = ""] = rest.split("/");
  return { level: "repository", owner, name };
}
