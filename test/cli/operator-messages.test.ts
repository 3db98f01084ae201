import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unmatchedReason } from "../../src/autoscaler/match.js";
import type { AutoscalerStatus } from "../../src/cli/status/autoscaler-types.js";
import type { RunnerSummary } from "../../src/cli/status/dispatcher-types.js";
import { renderStatus } from "../../src/cli/status/render.js";
import { runCli } from "../../src/cli/main.js";
import type { CapConfig } from "../../src/config/dispatcher-schema.js";
import { admit } from "../../src/dispatcher/caps.js";
import type { RunnerRecord } from "../../src/store/types.js";
import { startHarness } from "../dispatcher/harness.js";
import type { Harness } from "../dispatcher/harness.js";
import { memoryIo } from "./memory-io.js";

/** Issue 10, item 16: what `forgejo-nsc status` says, and what docs/cli.md says it says. */
const ROOT = join(import.meta.dirname, "../..");
const NOW = new Date("2026-08-01T12:00:00.000Z");
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();

describe("a daemon that answers 401", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ simulate: false });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("is shown as unauthorized with what to do, not as not reachable", async () => {
    const m = memoryIo({ now: () => NOW, env: { PATH: process.env.PATH } });
    const code = await runCli(["status", "--dispatcher", h.url, "--autoscaler", "none", "--token", "not-the-dispatcher-token-0123"], m.io);
    expect(code).toBe(1);
    const out = m.stdout();
    expect(out).toContain(`Dispatcher ${h.url}: unauthorized: check the token`);
    expect(out).not.toContain("NOT REACHABLE");
    expect(out).toContain("what to do: the dispatcher rejected the token: pass --token-file with one of the tokens in its auth.tokens");
  });
});

/** A source file must still contain the fixed text of a message the docs quote. */
function templateIn(file: string, fixed: string): void {
  expect(readFileSync(join(ROOT, file), "utf8"), `${file} no longer says "${fixed}"`).toContain(fixed);
}

describe("docs/cli.md", () => {
  it("shows the output the CLI prints, with messages the daemons really give", () => {
    // Reasons made by the daemons' own code where it is exported, checked against the source where not.
    const record = (name: string, labels: string[]) =>
      ({ name, labels, scope: { level: "repository", owner: "acme", name: "app" } }) as unknown as RunnerRecord;
    const cap: CapConfig = { scope: "repo:acme/*", max: 2 };
    const pendingReason = admit(
      [record("nscloud-9qk2m1xv7a", ["namespace-profile-linux-medium"])],
      [record("nscloud-e44n4zfkwg", ["namespace-profile-linux-medium"]), record("nscloud-x1", ["namespace-profile-linux-medium"])],
      { maxRunners: 20, caps: [cap] },
      () => "repo:acme/app",
    ).waiting.get("nscloud-9qk2m1xv7a") as string;
    const runningReason = "instance oc8ub0p9ueio7 is up; forgejo-runner is waiting for job 42 (TTL 30m0s)";
    templateIn("src/dispatcher/launch.ts", "is up; forgejo-runner is waiting for ${");
    const inFlight = "runner nscloud-9qk2m1xv7a on its way";
    templateIn("src/autoscaler/plan-pass.ts", 'reason: `runner ${alive.join(", ")} on its way`');

    const runners = [
      {
        name: "nscloud-e44n4zfkwg",
        state: "running",
        reason: runningReason,
        platform: "linux",
        labels: ["namespace-profile-linux-medium"],
        job: { id: 42, attempt: 1, handle: "9d52c7d8" },
        updated_at: ago(252_000),
      },
      {
        name: "nscloud-9qk2m1xv7a",
        state: "pending",
        reason: pendingReason,
        platform: "linux",
        labels: ["namespace-profile-linux-medium"],
        job: { id: 43, attempt: null, handle: "5e0b71aa" },
        updated_at: ago(30_000),
      },
    ] as unknown as RunnerSummary[];
    const status = {
      instances: [
        {
          name: "forgejo",
          base_url: "https://forgejo.example.com",
          scope: "repo:acme/app",
          server: { kind: "forgejo", version: "15.0.3" },
          mode: "polling",
          last_poll_at: ago(3_000),
          next_poll_at: new Date(NOW.getTime() + 7_000).toISOString(),
          webhook: { configured: true, setup: "ok", last_delivery_at: ago(40_000), last_delivery_event: "action_run_success" },
          targets: [
            {
              name: "linux-medium",
              labels: ["namespace-profile-linux-medium"],
              waiting: 1,
              running: 1,
              idle: 0,
              in_flight: 2,
              min_idle: 1,
              max_runners: 5,
            },
          ],
          waiting_jobs: [
            {
              id: 43,
              attempt: null,
              runs_on: ["namespace-profile-linux-medium"],
              target: "linux-medium",
              state: "in_flight",
              reason: inFlight,
            },
            { id: 44, attempt: null, runs_on: ["gpu"], target: null, state: "unmatched", reason: unmatchedReason(["gpu"]) },
          ],
        },
      ],
    } as unknown as AutoscalerStatus;
    const rendered = renderStatus(
      {
        generatedAt: NOW.toISOString(),
        states: ["pending", "launching", "running", "finishing"],
        dispatcher: { daemon: "dispatcher", url: "http://127.0.0.1:8080", ok: true, data: runners },
        autoscaler: { daemon: "autoscaler", url: "http://127.0.0.1:8081", ok: true, data: status },
      },
      NOW,
    );
    const doc = readFileSync(join(ROOT, "docs/cli.md"), "utf8");
    const section = doc.slice(doc.indexOf("### Reading the output"));
    const block = /```\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBe(rendered);
  });
});
