import { describe, expect, it } from "vitest";
import { standardDeployment } from "../../bench/simulate/deployment.js";
import { policyNamed } from "../../bench/simulate/policies/index.js";
import { simulate } from "../../bench/simulate/run.js";
import { mixedDayTrace } from "../../bench/simulate/traces.js";

/**
 * Issue 13 item 3 in the simulator: the product's planner (`improved`) against the one before it
 * (`today`) on a mixed day with another seed than the documented table.
 */
describe("simulator: the improved planner on a mixed day (seed 2, 5% loss)", () => {
  it("kills no job at the deadline, launches fewer pinned runners for taken jobs, idles less, strands nothing", async () => {
    const trace = mixedDayTrace(2);
    const run = (policy: string) =>
      simulate({ trace, deployment: standardDeployment(), policy: policyNamed(policy).create, loss: 0.05, seed: 2 });
    const today = await run("today");
    const improved = await run("improved");
    expect(today.killed).toBeGreaterThan(0);
    expect(improved.killed).toBe(0);
    expect(improved.stranded).toBe(0);
    expect(improved.unusedBy.jobTaken).toBeLessThan(today.unusedBy.jobTaken / 2);
    expect(improved.unusedBy.expired).toBe(0);
    expect(improved.idleMinutes).toBeLessThan(today.idleMinutes);
    // min_idle_auto in place of the scheduled pool of the same ceiling: cheaper, p95 within the
    // noise (with this seed 1m14s against 1m13s; with seed 1 it is 14 s lower).
    const auto = await run("auto");
    expect(auto.stranded).toBe(0);
    expect(auto.killed).toBe(0);
    expect(auto.idleMinutes).toBeLessThan(improved.idleMinutes);
    expect(auto.p95.ms).toBeLessThanOrEqual(improved.p95.ms + 5_000);
  });
});
