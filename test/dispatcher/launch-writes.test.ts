import { afterEach, describe, expect, it } from "vitest";
import { Scheduler } from "../../src/dispatcher/scheduler.js";
import type { Store } from "../../src/store/types.js";
import { waitFor } from "../helpers/wait.js";
import type { DecisionKit } from "./decision-kit.js";
import { startDecisionKit } from "./decision-kit.js";

/**
 * Issue 13 item 4: every durable write between a pending runner and `nsc run` is an fsync on the
 * hot path. Two remain after the accepting one — the launch slot's claim (with the attempt count)
 * and the registration (with the reason) — and the records say the same as before.
 */
let k: DecisionKit | undefined;
let s: Scheduler | undefined;
afterEach(async () => {
  await s?.drain(0);
  await k?.close();
});

function countWrites(store: Store): string[] {
  const writes: string[] = [];
  const target = store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const m of ["update", "transition", "createDispatch"]) {
    const original = target[m] as (...a: unknown[]) => Promise<unknown>;
    target[m] = (...args: unknown[]) => {
      writes.push(m === "transition" ? `transition -> ${String(args[2])}` : m);
      return original.apply(store, args);
    };
  }
  return writes;
}

describe("writes on the way to nsc run", () => {
  it("two: pending -> launching with the attempt counted, then the registration with the reason", async () => {
    k = await startDecisionKit({ yaml: { namespace: { max_parallel: 2, max_runners: 10 } } });
    s = new Scheduler(k.ctx);
    const kit = k;
    await kit.runner("nscloud-hot", "pending");
    const writes = countWrites(kit.ctx.records.store);
    await s.pass();
    await waitFor(() => kit.launchers.linux.inProgress.length === 1, { what: "the launch" });
    expect(writes).toEqual(["transition -> launching", "update"]);
    const r = (await kit.store.getRunner("nscloud-hot"))!;
    expect(r).toMatchObject({
      state: "launching",
      launchAttempts: 1,
      registration: "ephemeral",
      reason: "starting a linux instance (attempt 1/3)",
    });
    expect(r.forgejoRunnerId).toBeGreaterThan(0);
    expect(r.history.map((h) => h.reason)).toContain("launch slot acquired (attempt 1/3)");
  });
});
