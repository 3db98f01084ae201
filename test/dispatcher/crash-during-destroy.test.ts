import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { DEADLINE_MS, ProcessWorld, expectNoSecrets, expectSettled } from "./process-harness.js";

let world: ProcessWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Waits until the dispatcher has tried (and failed) to destroy at least `n` times. */
async function failedDestroys(w: ProcessWorld, n: number): Promise<void> {
  await waitFor(() => w.nsc.calls("destroy").filter((c) => c.exitCode === 1).length >= n, {
    timeoutMs: DEADLINE_MS,
    intervalMs: 100,
    what: `${n} failed destroy calls`,
  });
}

describe("SIGKILL during destroy", () => {
  it("finishes a cancel after a restart: instance destroyed, registration deleted, outcome kept", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create();
    const w = world;
    const sim = w.simulate({ jobMs: 60 * 60_000 });
    await w.start();
    const a = await w.dispatchJob();
    await waitFor(() => sim.events.some((e) => e.type === "took_job" && e.job === a.job.id), {
      timeoutMs: DEADLINE_MS,
      what: "the runner to take its job",
    });
    const instanceId = (await w.waitState(a.name, "running")).instance_id as string;
    const registration = w.liveRegistrations().find((r) => r.name === a.name);
    expect(registration).toBeDefined();

    w.nsc.setKnobs({ transient: { destroy: true } });
    const cancel = await w.request("DELETE", `/api/v1/runners/${a.name}?reason=operator-test`);
    expect(cancel.status).toBe(200);
    expect(cancel.body.state).toBe("finishing");
    // The supervisor retries the destroy on its ticks; the kill lands between (or during) attempts.
    await failedDestroys(w, 2);
    await w.kill("SIGKILL");
    const rec = (await w.records()).find((r) => r.name === a.name);
    expect(rec).toMatchObject({ state: "finishing", instanceId });
    expect(rec?.reason).toMatch(/^failing: cancelled through the API \(operator-test\)/);
    expect(w.nsc.instances().map((i) => i.id)).toEqual([instanceId]);

    w.nsc.setKnobs({ transient: null });
    await w.start();
    const failed = await w.waitState(a.name, "failed");
    expect(failed.reason).toBe("cancelled through the API (operator-test)");
    expect(failed.history.map((t: { to: string }) => t.to)).toEqual(["pending", "launching", "running", "finishing", "failed"]);
    expect(w.nsc.instances({ includeDestroyed: true }).find((i) => i.id === instanceId)?.destroy_reason).toBe("destroy");
    expect(w.liveRegistrations()).toEqual([]);
    expect(w.forgejo.callsTo(`/actions/runners/${registration?.id}`, "DELETE").length).toBeGreaterThanOrEqual(1);
    expect(w.instancesFor(a.name)).toHaveLength(1);
    expect(w.runCalls(a.name)).toHaveLength(1);
    expectNoSecrets(w);
  });

  it("completes a finish interrupted after the job ended, as done", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create();
    const w = world;
    const sim = w.simulate({ jobMs: 100 });
    await w.start();
    w.nsc.setKnobs({ transient: { destroy: true } });
    const a = await w.dispatchJob();
    // The job ends, the instance ends with it; the supervisor moves the runner to finishing and
    // its destroy (of an instance already gone) keeps failing.
    await w.waitState(a.name, "finishing");
    await failedDestroys(w, 2);
    await w.kill("SIGKILL");
    const rec = (await w.records()).find((r) => r.name === a.name);
    expect(rec?.state).toBe("finishing");
    expect(rec?.reason).toMatch(
      /^finishing: (instance .* ended after its job finished|job finished: Forgejo removed the ephemeral runner)/,
    );

    w.nsc.setKnobs({ transient: null });
    await w.start();
    await expectSettled(w, [a], sim);
    expect((await w.runner(a.name)).reason).toMatch(
      /^(instance .* ended after its job finished|job finished: Forgejo removed the ephemeral runner; instance .* destroyed)$/,
    );
    expectNoSecrets(w);
  });
});
