import type { z } from "zod";
import { describe, expect, it } from "vitest";
import type { AutoscalerStatus as DaemonAutoscalerStatus } from "../../src/autoscaler/status.js";
import { autoscalerStatusSchema } from "../../src/cli/status/autoscaler-types.js";
import { runnerDetailSchema, runnerListSchema } from "../../src/cli/status/dispatcher-types.js";
import { renderStatus } from "../../src/cli/status/render.js";
import { runnerView } from "../../src/dispatcher/views.js";
import type { RunnerRecord } from "../../src/store/types.js";

// Compile-time: what the daemons produce is accepted by what the CLI parses. tsc fails here when a
// daemon renames or retypes a field the CLI reads.
// The CLI's schemas are loose objects (unknown keys pass); their index signature is dropped here,
// because the daemons' interfaces have none.
type Known<T> = T extends readonly (infer U)[]
  ? Known<U>[]
  : T extends object
    ? { [K in keyof T as string extends K ? never : K]: Known<T[K]> }
    : T;
type RunnerViewJson = ReturnType<typeof runnerView>;
export const dispatcherListAccepted = (v: RunnerViewJson[]): Known<z.input<typeof runnerListSchema>> => ({ runners: v });
export const dispatcherDetailAccepted = (
  v: RunnerViewJson & { history: RunnerRecord["history"] },
): Known<z.input<typeof runnerDetailSchema>> => v;
export const autoscalerAccepted = (v: DaemonAutoscalerStatus): Known<z.input<typeof autoscalerStatusSchema>> => v;

const record: RunnerRecord = {
  name: "nscloud-0a1b2c3d4e5f",
  dispatchId: "d-0a1b",
  state: "running",
  reason: "instance ready",
  platform: "linux",
  labels: ["namespace-profile-linux-medium"],
  scope: { level: "repository", owner: "acme", name: "app" },
  machineType: "4x8",
  image: "code.forgejo.org/forgejo/runner:12",
  ttlMs: 1_800_000,
  env: { SECRET_VALUE: "must-not-matter" },
  job: { id: 7, attempt: 1, handle: "h-7" },
  instanceId: "abcdefghijklm",
  launchAttempts: 1,
  createdAt: "2026-08-01T11:55:00.000Z",
  updatedAt: "2026-08-01T11:58:00.000Z",
  launchedAt: "2026-08-01T11:56:00.000Z",
  expiresAt: "2026-08-01T12:26:00.000Z",
  queueDeadline: "2026-08-01T12:55:00.000Z",
  history: [
    { at: "2026-08-01T11:55:00.000Z", from: null, to: "pending", reason: "accepted" },
    { at: "2026-08-01T11:58:00.000Z", from: "launching", to: "running", reason: "instance ready" },
  ],
};

describe("the CLI reads what the daemons write", () => {
  it("parses the dispatcher's own runner views", () => {
    const list = runnerListSchema.parse({ runners: [runnerView(record)] });
    expect(list.runners[0]).toMatchObject({
      name: record.name,
      state: "running",
      job: { id: 7, attempt: 1, handle: "h-7" },
      instance_id: "abcdefghijklm",
    });
    const detail = runnerDetailSchema.parse(runnerView(record, { history: true }));
    expect(detail.history.map((h) => h.to)).toEqual(["pending", "running"]);
  });

  it("parses and prints an autoscaler status with an instance it cannot serve", () => {
    const status: DaemonAutoscalerStatus = {
      instances: [
        {
          name: "old",
          base_url: "https://old.example.com",
          scope: "instance",
          server: null,
          mode: "polling",
          mode_reason: null,
          startup_error: "Forgejo 10.0.0 has no jobs API: upgrade to Forgejo 11 or newer",
          last_poll_at: null,
          last_success_at: null,
          last_error: null,
          next_poll_at: null,
          webhook: {
            configured: false,
            setup: "not_configured",
            message: null,
            last_delivery_at: null,
            last_delivery_event: null,
            workflow_job_seen: false,
          },
          targets: [
            {
              name: "t",
              labels: ["a"],
              waiting: 0,
              running: 0,
              idle: null,
              in_flight: 0,
              min_idle: 0,
              min_idle_period: null,
              max_runners: null,
              note: null,
            },
          ],
          waiting_jobs: [],
        },
      ],
    };
    const parsed = autoscalerStatusSchema.parse(status);
    const text = renderStatus(
      {
        generatedAt: "2026-08-01T12:00:00.000Z",
        states: [],
        autoscaler: { daemon: "autoscaler", url: "http://a", ok: true, data: parsed },
      },
      new Date("2026-08-01T12:00:00.000Z"),
    );
    expect(text).toContain("  instance old  |  server not reached yet  |  mode polling  |  not polled yet\n");
    expect(text).toContain("  CANNOT SERVE THIS INSTANCE: Forgejo 10.0.0 has no jobs API: upgrade to Forgejo 11 or newer\n");
    expect(text).toContain("  webhook: not managed, no delivery yet\n");
    expect(text).toMatch(/ {4}t\s+a\s+0\s+0\s+-\s+0\s+0\s+-\s+-\n/);
    expect(text).toContain("    no waiting jobs\n");
  });
});
