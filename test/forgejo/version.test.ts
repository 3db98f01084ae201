import { describe, expect, it } from "vitest";
import { VersionParseError, describeServer, parseServerVersion } from "../../src/forgejo/version.js";

type Row = [
  text: string,
  kind: "forgejo" | "gitea",
  major: number,
  minor: number,
  caps: {
    jobsApi: boolean;
    jobsWithoutLabels: boolean;
    runnersApi: boolean;
    jobHandles: boolean;
    listRunnersApi: boolean;
    jobRunIds: boolean;
    workflowJobWebhook: boolean;
  },
];

const none = {
  jobsApi: false,
  jobsWithoutLabels: false,
  runnersApi: false,
  jobHandles: false,
  listRunnersApi: false,
  jobRunIds: false,
  workflowJobWebhook: false,
};
const f11 = { ...none, jobsApi: true };
const f14 = { ...f11, jobsWithoutLabels: true };
const f15 = { ...f14, runnersApi: true, jobHandles: true, listRunnersApi: true };
const f16 = { ...f15, jobRunIds: true };
// Gitea 1.24 sends workflow_job webhooks but has no jobs search (it came in 1.25 with the workflow_run API).
const g124 = {
  jobsApi: false,
  jobsWithoutLabels: false,
  runnersApi: false,
  jobHandles: false,
  listRunnersApi: true,
  jobRunIds: false,
  workflowJobWebhook: true,
};
const g125 = { ...g124, jobsApi: true, jobsWithoutLabels: true, jobRunIds: true };

const table: Row[] = [
  ["7.0.0+gitea-1.22.0", "forgejo", 7, 0, none],
  ["10.0.3+gitea-1.22.0", "forgejo", 10, 0, none],
  ["11.0.0+gitea-1.22.0", "forgejo", 11, 0, f11],
  ["11.0.15+gitea-1.22.0", "forgejo", 11, 0, f11],
  ["12.0.1+gitea-1.22.0", "forgejo", 12, 0, f11],
  ["13.0.2+gitea-1.22.0", "forgejo", 13, 0, f11],
  ["14.0.0+gitea-1.22.0", "forgejo", 14, 0, f14],
  ["15.0.3+gitea-1.22.0", "forgejo", 15, 0, f15],
  ["15.0.0-dev-12-gabc123+gitea-1.22.0", "forgejo", 15, 0, f15],
  ["16.0.0+gitea-1.22.0", "forgejo", 16, 0, f16],
  ["17.0.0-dev-38-gd883bd8f12+gitea-1.22.0", "forgejo", 17, 0, f16],
  // Forgejo before its own numbering: 1.x with the suffix, no Actions API at all.
  ["1.21.11-1+gitea-1.21.11", "forgejo", 1, 21, none],
  // Forgejo's numbering starts at 7: no suffix still means Forgejo.
  ["15.0.3", "forgejo", 15, 0, f15],
  [" v14.0.1+gitea-1.22.0\n", "forgejo", 14, 0, f14],
  ["1.24.0", "gitea", 1, 24, g124],
  ["1.24.2", "gitea", 1, 24, g124],
  ["1.24.0-rc0", "gitea", 1, 24, g124],
  ["1.25.0+dev-338-g2f309b844c", "gitea", 1, 25, g125],
  ["1.25.5", "gitea", 1, 25, g125],
  ["1.26.0", "gitea", 1, 26, g125],
  ["1.23.8", "gitea", 1, 23, none],
  ["1.22", "gitea", 1, 22, none],
];

describe("parseServerVersion", () => {
  it.each(table)("%s → %s %i.%i", (text, kind, major, minor, caps) => {
    const info = parseServerVersion(text);
    expect(info).toEqual({ kind, version: text.trim(), major, minor, ...caps });
  });

  it("lets the configured kind win over the heuristic", () => {
    expect(parseServerVersion("1.24.0", "forgejo").kind).toBe("forgejo");
    expect(parseServerVersion("1.24.0", "forgejo").jobsApi).toBe(false);
    const g = parseServerVersion("15.0.3+gitea-1.22.0", "gitea");
    expect(g.kind).toBe("gitea");
    expect(g.runnersApi).toBe(false);
  });

  it.each(["", "development", "dev", "v", "abc.def", "15"])("rejects %j with a message saying what to check", (text) => {
    expect(() => parseServerVersion(text)).toThrow(VersionParseError);
    expect(() => parseServerVersion(text)).toThrow(/forgejo\.base_url/);
  });

  it("describes a server without the compatibility suffix", () => {
    expect(describeServer(parseServerVersion("15.0.3+gitea-1.22.0"))).toBe("Forgejo 15.0.3");
    expect(describeServer(parseServerVersion("1.24.2"))).toBe("Gitea 1.24.2");
  });
});
