import type { ServerInfo } from "./types.js";

export type ServerKind = ServerInfo["kind"];

/** The version string could not be read; names the string and how to get past it. */
export class VersionParseError extends Error {
  constructor(readonly text: string) {
    super(
      `cannot read the server version ${JSON.stringify(text.slice(0, 80))} from GET /api/v1/version: ` +
        `expected "<major>.<minor>.<patch>" (Forgejo adds "+gitea-<x.y.z>"); ` +
        `check that forgejo.base_url points at Forgejo or Gitea and not at a proxy page`,
    );
    this.name = "VersionParseError";
  }
}

const NUMBERS = /^v?(\d+)\.(\d+)(?:\.(\d+))?/;

/**
 * Turns the `version` field of GET /api/v1/version into a ServerInfo
 * (docs/upstream-contracts.md#server-version-and-features).
 *
 * Forgejo answers "<x.y.z>+gitea-<compat>" ("15.0.3+gitea-1.22.0", dev builds
 * "17.0.0-dev-38-gd883bd8f12+gitea-1.22.0"); Gitea answers "1.24.2", "1.25.0-rc0" or
 * "1.26.0+dev-338-gabcdef". A pre-release or dev build counts as its release: its features are in.
 * Forgejo's own numbering started at 7, so a bare major >= 7 is Forgejo too; `kindHint` wins when
 * the operator configured the kind explicitly.
 */
export function parseServerVersion(text: string, kindHint?: ServerKind): ServerInfo {
  const version = text.trim();
  const m = NUMBERS.exec(version);
  if (!m) throw new VersionParseError(text);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  const kind: ServerKind = kindHint ?? (/\+gitea-\d/.test(version) || major >= 7 ? "forgejo" : "gitea");
  return kind === "forgejo" ? forgejoInfo(version, major, minor) : giteaInfo(version, major, minor);
}

function forgejoInfo(version: string, major: number, minor: number): ServerInfo {
  return {
    kind: "forgejo",
    version,
    major,
    minor,
    jobsApi: major >= 11,
    jobsWithoutLabels: major >= 14,
    runnersApi: major >= 15,
    listRunnersApi: major >= 15,
    jobHandles: major >= 15,
    jobRunIds: major >= 16,
    workflowJobWebhook: false,
  };
}

function giteaInfo(version: string, major: number, minor: number): ServerInfo {
  const atLeast = (ma: number, mi: number) => major > ma || (major === ma && minor >= mi);
  return {
    kind: "gitea",
    version,
    major,
    minor,
    // GET …/actions/jobs ({jobs,total_count}); it has no label filter, the client filters itself.
    // It came with the workflow_run API (go-gitea/gitea#33964, merged 2025-06-20): first in 1.25,
    // after 1.24.0 (2025-05-26). Gitea 1.24.6 answers 404 (seen in test/upstream/gitea.test.ts).
    jobsApi: atLeast(1, 25),
    jobsWithoutLabels: atLeast(1, 25),
    // Gitea lists and deletes runners but cannot register one over REST.
    runnersApi: false,
    listRunnersApi: atLeast(1, 24),
    jobHandles: false,
    jobRunIds: atLeast(1, 25),
    workflowJobWebhook: atLeast(1, 24),
  };
}

/** "Forgejo 15.0.3" / "Gitea 1.24.2", for messages. */
export function describeServer(info: Pick<ServerInfo, "kind" | "version">): string {
  const name = info.kind === "forgejo" ? "Forgejo" : "Gitea";
  return `${name} ${info.version.replace(/\+gitea-.*$/, "")}`;
}
