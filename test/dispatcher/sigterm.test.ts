import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { DEADLINE_MS, LABEL, ProcessWorld, expectNoSecrets } from "./process-harness.js";

let world: ProcessWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** One runner holding a job, and a second one inside a slow `nsc run` (the instance exists, nsc has not returned). */
async function runningAndLaunching(w: ProcessWorld, createDelayMs: number) {
  const sim = w.simulate({ jobMs: 60 * 60_000 });
  await w.start();
  const a = await w.dispatchJob();
  await waitFor(() => sim.events.some((e) => e.type === "took_job" && e.job === a.job.id), {
    timeoutMs: DEADLINE_MS,
    what: "the first runner to take its job",
  });
  const aInstance = (await w.waitState(a.name, "running")).instance_id as string;
  w.nsc.setKnobs({ createDelayMs });
  const b = await w.dispatchJob();
  await waitFor(() => w.runCalls(b.name)[0]?.exitCode === null && w.instancesFor(b.name).length === 1, {
    timeoutMs: DEADLINE_MS,
    what: "the second runner's nsc run to be in progress",
  });
  return { sim, a, aInstance, b };
}

describe("SIGTERM", () => {
  it("stops accepting, lets the launch in progress finish, leaves running runners alive and exits 0", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create({ config: { dispatcher: { shutdown_timeout: "60s" } } });
    const w = world;
    const { a, aInstance, b } = await runningAndLaunching(w, 6_000);
    const proc = w.current;

    // Only the main process, as systemd's KillMode=mixed does: nsc must be allowed to finish.
    const sentAt = Date.now();
    process.kill(proc.pid, "SIGTERM");
    await waitFor(async () => (await fetch(`${proc.url}/readyz`)).status === 503, {
      timeoutMs: DEADLINE_MS,
      intervalMs: 50,
      what: "/readyz to report shutting down",
    });
    const refused = await w.request("POST", "/api/v1/dispatch", { labels: [LABEL] });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(refused.body.error).toBe("shutting_down");
    // Reads still work while draining.
    expect((await w.request("GET", `/api/v1/runners/${a.name}`)).status).toBe(200);

    const exit = await proc.exited;
    const tookMs = Date.now() - sentAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(tookMs).toBeLessThan(60_000);

    // The launch was in progress when the signal came, completed, and was recorded; nothing was destroyed.
    const run = w.runCalls(b.name)[0];
    expect(run?.exitCode).toBe(0);
    expect(Date.parse(run?.time ?? "") + (run?.durationMs ?? 0)).toBeGreaterThan(sentAt);
    const records = new Map((await w.records()).map((r) => [r.name, r]));
    expect(records.get(a.name)).toMatchObject({ state: "running", instanceId: aInstance });
    expect(records.get(b.name)).toMatchObject({ state: "running", instanceId: w.instancesFor(b.name)[0]?.id });
    expect(records.size).toBe(2);
    expect(w.nsc.instances()).toHaveLength(2);
    expect(w.nsc.calls("destroy")).toEqual([]);
    expect(w.forgejo.job(a.job.id)?.status).toBe("running");
    expect(w.logLines(/^stopped$/)).toHaveLength(1);
    expect(w.logLines(/launches still in progress at shutdown/)).toEqual([]);
    expectNoSecrets(w);
  });

  it(
    "exits within dispatcher.shutdown_timeout when a launch outlasts it; the next start adopts that instance",
    { timeout: 180_000 },
    async () => {
      world = await ProcessWorld.create({ config: { dispatcher: { shutdown_timeout: "1s" } } });
      const w = world;
      const { b } = await runningAndLaunching(w, 10 * 60_000);
      const proc = w.current;

      const sentAt = Date.now();
      process.kill(proc.pid, "SIGTERM");
      const exit = await proc.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      // Far below the 10 minutes the launch would take: the bound, not the launch, ended the wait.
      expect(Date.now() - sentAt).toBeLessThan(60_000);
      expect(w.logLines(/launches still in progress at shutdown/)).toHaveLength(1);
      expect((await w.records()).find((r) => r.name === b.name)?.state).toBe("launching");

      w.nsc.setKnobs({ createDelayMs: null });
      await w.start();
      expect(w.logLines(/recovered interrupted launches/).at(-1)).toMatchObject({ adopted: [b.name] });
      expect(await w.runner(b.name)).toMatchObject({ state: "running", instance_id: w.instancesFor(b.name)[0]?.id });
      expect(w.instancesFor(b.name)).toHaveLength(1);
      expect(w.runCalls(b.name)).toHaveLength(1);
      expectNoSecrets(w);
    },
  );
});
