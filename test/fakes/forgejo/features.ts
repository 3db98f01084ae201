import type { FakeKind } from "./model.js";

/**
 * Which routes and fields the faked server version has, per the matrix in
 * contracts/forgejo-api.md §0 (Forgejo) and §7.4 (Gitea 1.24). Written independently of
 * src/forgejo/version.ts so a mistake there is not mirrored here.
 */
export interface FakeFeatures {
  kind: FakeKind;
  major: number;
  minor: number;
  /** Forgejo >= 11: GET …/actions/runners/jobs and /admin/runners/jobs. */
  jobsSearch: boolean;
  /** Forgejo 11–13: a missing `labels` parameter matches nothing. */
  jobsNeedLabels: boolean;
  /** Forgejo >= 15: runner list/get/delete/register, ephemeral, /admin/actions/runners/…, attempt + handle. */
  runnersApi: boolean;
  /** Forgejo >= 16: run_id on jobs. */
  runIdOnJobs: boolean;
  /** Forgejo >= 12: action_run_* webhooks. */
  actionRunHooks: boolean;
  /** Gitea >= 1.24: runner list {runners,total_count}, workflow_job hooks, POST registration-token. */
  giteaActions: boolean;
  /**
   * Gitea >= 1.25: GET …/actions/jobs. It came with the workflow_run API (go-gitea/gitea#33964,
   * merged 2025-06-20, after 1.24.0 of 2025-05-26); the real Gitea 1.24.6 answers 404.
   */
  giteaJobsSearch: boolean;
}

export function featuresOf(kind: FakeKind, version: string): FakeFeatures {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) throw new Error(`fake Forgejo: version ${JSON.stringify(version)} is not "<major>.<minor>[.<patch>]"`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (kind === "gitea") {
    const giteaActions = major > 1 || (major === 1 && minor >= 24);
    const giteaJobsSearch = major > 1 || (major === 1 && minor >= 25);
    return {
      kind,
      major,
      minor,
      jobsSearch: false,
      jobsNeedLabels: false,
      runnersApi: false,
      runIdOnJobs: true,
      actionRunHooks: false,
      giteaActions,
      giteaJobsSearch,
    };
  }
  return {
    kind,
    major,
    minor,
    jobsSearch: major >= 11,
    jobsNeedLabels: major >= 11 && major < 14,
    runnersApi: major >= 15,
    runIdOnJobs: major >= 16,
    actionRunHooks: major >= 12,
    giteaActions: false,
    giteaJobsSearch: false,
  };
}

/** What GET /api/v1/version answers. */
export function versionString(kind: FakeKind, version: string): string {
  return kind === "forgejo" && !version.includes("+gitea-") ? `${version}+gitea-1.22.0` : version;
}
