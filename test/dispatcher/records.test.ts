import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IllegalTransitionError } from "../../src/dispatcher/records.js";
import type { RunnerState } from "../../src/store/types.js";
import type { DecisionKit } from "./decision-kit.js";
import { startDecisionKit } from "./decision-kit.js";

let k: DecisionKit;
beforeEach(async () => {
  k = await startDecisionKit();
});
afterEach(async () => {
  await k.close();
});

describe("Records.transition enforces RUNNER_TRANSITIONS", () => {
  it.each<{ state: RunnerState; from: RunnerState[]; to: RunnerState; illegal: string }>([
    { state: "running", from: ["running"], to: "done", illegal: "running" },
    { state: "pending", from: ["pending"], to: "running", illegal: "pending" },
    { state: "done", from: ["done"], to: "pending", illegal: "done" },
    { state: "finishing", from: ["finishing"], to: "running", illegal: "finishing" },
    // Every state in `from` must allow the move, whichever the runner is in right now.
    { state: "launching", from: ["launching", "running"], to: "pending", illegal: "running" },
    { state: "running", from: ["launching", "running", "finishing"], to: "finishing", illegal: "finishing" },
  ])("refuses $from -> $to as a programming error and records nothing", async ({ state, from, to, illegal }) => {
    const r = await k.runner("nscloud-x", state, state === "running" ? { instanceId: "ix" } : {});
    const moved = k.ctx.records.transition(r, from, to, "test");
    await expect(moved).rejects.toThrow(IllegalTransitionError);
    await expect(moved).rejects.toThrow(`runner nscloud-x: illegal transition ${illegal} -> ${to}`);
    expect(await k.store.getRunner("nscloud-x")).toEqual(r);
  });

  it("applies a legal move, and answers undefined when the runner is elsewhere", async () => {
    const r = await k.runner("nscloud-y", "running", { instanceId: "iy" });
    expect(await k.ctx.records.transition(r, ["launching"], "running", "late")).toBeUndefined();
    expect(await k.ctx.records.transition(r, ["launching", "running"], "finishing", "failing: x", { outcome: "failed" })).toMatchObject({
      state: "finishing",
      outcome: "failed",
    });
  });
});
