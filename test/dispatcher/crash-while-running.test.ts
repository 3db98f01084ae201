import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { DEADLINE_MS, ProcessWorld, expectNoSecrets, expectSettled } from "./process-harness.js";
import type { startRunnerSimulator } from "../fakes/runner-sim.js";

let world: ProcessWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

type Sim = ReturnType<typeof startRunnerSimulator>;

/** A runner whose simulated job never ends by itself: the test ends it as forgejo-runner would. */
async function runningJob(w: ProcessWorld) {
  const sim = w.simulate({ jobMs: 60 * 60_000 });
  await w.start();
  const a = await w.dispatchJob();
  await waitFor(() => sim.events.some((e) => e.type === "took_job" && e.job === a.job.id), {
    timeoutMs: DEADLINE_MS,
    what: "the runner to take its job",
  });
  const running = await w.waitState(a.name, "running");
  return { sim, a, instanceId: running.instance_id as string };
}

/** What forgejo-runner does at the end of a one-job run: report the result, go offline, exit (the instance ends). */
function finishJobAsRunner(w: ProcessWorld, sim: Sim, jobId: number, instanceId: string): void {
  w.stopSimulator();
  const took = sim.events.find((e) => e.type === "took_job" && e.job === jobId);
  expect(took).toBeDefined();
  const job = w.forgejo.job(jobId);
  const runner = w.forgejo.runner(job?.runnerId as number);
  w.forgejo.finishJob(jobId, "success");
  if (runner) w.forgejo.disconnectRunner(runner.uuid);
  w.nsc.exitContainer(instanceId, 0);
}

describe("SIGKILL while a job runs", () => {
  it("keeps supervising the running runner after a restart, and sweeps a stray instance of ours", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create();
    const w = world;
    const { sim, a, instanceId } = await runningJob(w);

    await w.kill("SIGKILL");
    expect((await w.records()).find((r) => r.name === a.name)).toMatchObject({ state: "running", instanceId });
    // An instance with our owner label that no record explains (say, from a crash long ago).
    const stray = JSON.parse(
      execFileSync(
        w.nsc.bin,
        [
          "create",
          "-o",
          "json",
          "--machine_type",
          "2x4",
          "--duration",
          "10m",
          "--label",
          "forgejo-nsc.owner=default",
          "--label",
          "forgejo-nsc.runner=nscloud-stray",
        ],
        { env: { ...process.env, ...w.nsc.env }, encoding: "utf8" },
      ),
    ) as { instance_id: string };

    await w.start();
    await waitFor(() => w.nsc.instances({ includeDestroyed: true }).find((i) => i.id === stray.instance_id)?.destroy_reason === "destroy", {
      timeoutMs: DEADLINE_MS,
      what: "the stray instance to be destroyed",
    });
    await w.waitForLooks(3);
    // The job is still running on the instance launched before the kill: nothing relaunched, nothing destroyed.
    expect(await w.runner(a.name)).toMatchObject({ state: "running", instance_id: instanceId });
    expect(w.nsc.instances().map((i) => i.id)).toEqual([instanceId]);
    expect(w.nsc.calls("destroy").map((c) => c.argv.at(-1))).toEqual([stray.instance_id]);
    expect(w.logLines(/destroyed orphan instance/).map((l) => l.instance)).toEqual([stray.instance_id]);
    expect(w.forgejo.job(a.job.id)?.status).toBe("running");

    finishJobAsRunner(w, sim, a.job.id, instanceId);
    await expectSettled(w, [a], sim);
    expect((await w.runner(a.name)).reason).toMatch(/ended after its job finished|job finished: Forgejo removed the ephemeral runner/);
    expectNoSecrets(w);
  });

  it("settles a runner whose job finished while the dispatcher was down", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create();
    const w = world;
    const { sim, a, instanceId } = await runningJob(w);

    await w.kill("SIGKILL");
    finishJobAsRunner(w, sim, a.job.id, instanceId);
    expect(w.nsc.instances()).toHaveLength(0);

    await w.start();
    await expectSettled(w, [a], sim);
    const done = await w.runner(a.name);
    expect(done.reason).toMatch(/ended after its job finished|job finished: Forgejo removed the ephemeral runner/);
    expect(done.history.map((t: { to: string }) => t.to)).toEqual(["pending", "launching", "running", "finishing", "done"]);
    expectNoSecrets(w);
  });
});
