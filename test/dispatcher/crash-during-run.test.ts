import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { DEADLINE_MS, ProcessWorld, expectNoSecrets, expectSettled } from "./process-harness.js";

let world: ProcessWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts a dispatcher whose `nsc run` records the instance and then hangs (the instance exists, nsc has not returned). */
async function killDuringRun(w: ProcessWorld) {
  await w.start();
  const a = await w.dispatchJob();
  const instance = await waitFor(() => w.instancesFor(a.name)[0], { timeoutMs: DEADLINE_MS, what: "the instance nsc run created" });
  const run = w.runCalls(a.name)[0];
  expect(run?.exitCode).toBeNull();
  return { a, instance, runPid: run?.pid as number };
}

describe("SIGKILL during nsc run", () => {
  it("adopts the instance the interrupted run created instead of launching another", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create({ knobs: { createDelayMs: 10 * 60_000 } });
    const w = world;
    const { a, instance, runPid } = await killDuringRun(w);
    expect((await w.runner(a.name)).state).toBe("launching");

    await w.kill("SIGKILL");
    // The whole group died, nsc included, as under systemd: nsc never printed the instance ID.
    await waitFor(() => !alive(runPid), { timeoutMs: DEADLINE_MS, what: "the nsc run child to be gone" });
    const rec = (await w.records()).find((r) => r.name === a.name);
    expect(rec).toMatchObject({ state: "launching", registration: "ephemeral" });
    expect(rec?.instanceId).toBeUndefined();
    expect(rec?.forgejoRunnerId).toBeDefined();
    expect(w.nsc.instances().map((i) => i.id)).toEqual([instance.id]);

    w.nsc.setKnobs({ createDelayMs: null });
    await w.start();
    // Only now does the "container" run its job: recovery must have found the instance alive.
    const sim = w.simulate();
    const adopted = w.logLines(/recovered interrupted launches/);
    expect(adopted.at(-1)).toMatchObject({ adopted: [a.name], requeued: [] });
    expect(await w.runner(a.name)).toMatchObject({ instance_id: instance.id });

    await expectSettled(w, [a], sim);
    const history = (await w.runner(a.name)).history as { to: string; reason: string }[];
    expect(history.map((t) => t.to)).toEqual(["pending", "launching", "running", "finishing", "done"]);
    expect(history[2]?.reason).toMatch(/adopted instance .* whose launch was interrupted/);
    expectNoSecrets(w);
  });

  it("does not launch again when the instance ran its job and ended while the dispatcher was down", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create({ knobs: { createDelayMs: 10 * 60_000 } });
    const w = world;
    const sim = w.simulate();
    const { a, instance } = await killDuringRun(w);
    // The container became ready while nsc was still waiting: it takes its job, finishes it and exits.
    await waitFor(() => sim.events.some((e) => e.type === "exited" && e.instance === instance.id), {
      timeoutMs: DEADLINE_MS,
      what: "the job to finish",
    });
    await w.kill("SIGKILL");
    expect(w.nsc.instances()).toHaveLength(0);
    expect(w.forgejo.job(a.job.id)?.status).toBe("success");

    w.nsc.setKnobs({ createDelayMs: null });
    await w.start();
    expect(w.logLines(/recovered interrupted launches/).at(-1)).toMatchObject({ completed: [a.name], requeued: [] });
    await expectSettled(w, [a], sim);
    const done = await w.runner(a.name);
    expect(done.reason).toMatch(/already ran its job and ended/);
    expect(done.history.map((t: { to: string }) => t.to)).toEqual(["pending", "launching", "done"]);
    expectNoSecrets(w);
  });
});
