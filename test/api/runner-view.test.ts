import { describe, expect, it } from "vitest";
import { dispatchRequestSchema } from "../../src/api/dispatch-request.js";
import { dispatchViewSchema, runnerListQuerySchema, runnerListViewSchema, runnerViewSchema } from "../../src/api/runner-view.js";
import type { DispatchBody } from "../../src/autoscaler/dispatcher-types.js";
import { dispatchResponseSchema, runnerListSchema } from "../../src/autoscaler/dispatcher-types.js";
import { dispatchView, runnerView } from "../../src/dispatcher/views.js";
import type { RunnerRecord } from "../../src/store/types.js";
import { dispatchWith } from "../store/records.js";

/** A finishing Windows runner pinned to a job, with secrets in its env. */
const record: RunnerRecord = dispatchWith({
  id: "d-0a1b",
  names: ["nscloud-0a1b2c3d4e5f"],
  scope: { level: "organization", owner: "acme" },
  env: { SECRET_VALUE: "must-not-show" },
  runner: {
    state: "finishing",
    reason: "failing: cancelled",
    outcome: "failed",
    platform: "windows",
    job: { id: 7 },
    instanceId: "abcdefghijklm",
    registration: "ephemeral",
    forgejoRunnerId: 12,
    history: [
      { at: "2026-08-01T11:55:00.000Z", from: null, to: "pending", reason: "accepted" },
      { at: "2026-08-01T11:58:00.000Z", from: "running", to: "finishing", reason: "failing: cancelled" },
    ],
  },
}).runners[0]!;

describe("the dispatcher's views match the shared API schemas exactly", () => {
  it("a runner, with and without its history, and a list of them", () => {
    expect(runnerViewSchema.parse(runnerView(record))).toEqual(runnerView(record));
    expect(runnerViewSchema.parse(runnerView(record, { history: true })).history).toEqual(record.history);
    expect(runnerListViewSchema.parse({ runners: [runnerView(record)] }).runners).toHaveLength(1);
    // Windows runners have no container image; the outcome stays inside the dispatcher.
    expect(runnerView(record)).toMatchObject({ image: null, job: { id: 7, attempt: null, handle: null }, env_keys: ["SECRET_VALUE"] });
    expect(runnerView(record)).not.toHaveProperty("outcome");
  });

  it("refuses a field the schema does not name, so a view cannot grow past the contract unnoticed", () => {
    expect(runnerViewSchema.safeParse({ ...runnerView(record), env: record.env }).success).toBe(false);
  });

  it("a dispatch", () => {
    const d = { id: "d-0a1b", requestHash: "h", request: {}, runnerNames: [record.name], createdAt: record.createdAt };
    expect(dispatchViewSchema.parse(dispatchView(d, [record]))).toEqual(dispatchView(d, [record]));
  });
});

describe("the autoscaler reads them leniently", () => {
  it("reads the dispatcher's own views", () => {
    const [r] = runnerListSchema.parse({ runners: [runnerView(record)] }).runners;
    expect(r).toMatchObject({ name: record.name, state: "finishing", scope_key: "org:acme", job: { id: 7, attempt: null, handle: null } });
    const d = { id: "d-0a1b", requestHash: "h", request: {}, runnerNames: [record.name], createdAt: record.createdAt };
    expect(dispatchResponseSchema.parse(dispatchView(d, [record]))).toMatchObject({
      dispatch_id: "d-0a1b",
      runners: [{ name: record.name, state: "finishing" }],
    });
  });

  it.each([
    ["a state it does not know", { state: "hibernating" }, { state: "hibernating" }],
    [
      "a scope the dispatcher no longer accepts (dropped, not fatal)",
      { scope: { level: "organization", owner: ".." } },
      { scope: undefined },
    ],
    ["fields it does not know (dropped)", { color: "blue" }, {}],
    ["a job without attempt or handle", { job: { id: 3 } }, { job: { id: 3 } }],
  ])("tolerates %s", (_what, extra, expected) => {
    const [r] = runnerListSchema.parse({ runners: [{ ...runnerView(record), ...extra }] }).runners;
    expect(r).toMatchObject(expected);
    expect(r).not.toHaveProperty("color");
  });

  it("only name and state are required", () => {
    expect(runnerListSchema.parse({ runners: [{ name: "n", state: "pending" }] }).runners[0]).toEqual({
      name: "n",
      state: "pending",
      reason: "",
      labels: [],
    });
    expect(runnerListSchema.safeParse({ runners: [{ name: "n" }] }).success).toBe(false);
  });

  it("sends a dispatch body the dispatcher's request schema accepts, and asks for no more runners than a list may hold", () => {
    const body: DispatchBody = {
      count: 1,
      labels: ["linux"],
      scope: { level: "repository", owner: "acme", name: "app" },
      ttl: "20m0s",
      job: { id: 9, attempt: 1, handle: "h" },
    };
    expect(dispatchRequestSchema.parse(body)).toMatchObject({ count: 1, ttl: 1_200_000, job: { id: 9 } });
    expect(runnerListQuerySchema.parse({ limit: "5000" }).limit).toBe(5000);
    expect(runnerListQuerySchema.safeParse({ limit: "5001" }).success).toBe(false);
  });
});
