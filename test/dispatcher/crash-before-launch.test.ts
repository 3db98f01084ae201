import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { DEADLINE_MS, ProcessWorld, expectNoSecrets, expectSettled } from "./process-harness.js";

let world: ProcessWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

// POST …/actions/runners registers an ephemeral runner; holding it keeps a launch in `launching`
// before any instance exists.
const REGISTER = /^\/api\/v1\/repos\/example\/app\/actions\/runners$/;

describe("SIGKILL after 202, before nsc run", () => {
  it("relaunches the interrupted launch and the queued runner once each after a restart", { timeout: 180_000 }, async () => {
    world = await ProcessWorld.create({ config: { namespace: { max_parallel: 1 } } });
    const w = world;
    await w.start();
    w.forgejo.delay(10 * 60_000, REGISTER);

    const a = await w.dispatchJob();
    const b = await w.dispatchJob();
    // a is obtaining credentials (its registration call is held); b waits for the single launch slot.
    await waitFor(() => w.forgejo.callsTo(REGISTER, "POST").some((c) => (c.body as { name?: string }).name === a.name), {
      timeoutMs: DEADLINE_MS,
      what: "the registration call of the first runner",
    });
    expect((await w.runner(a.name)).state).toBe("launching");
    expect(await w.runner(b.name)).toMatchObject({ state: "pending", reason: expect.stringMatching(/launch slot/) });

    const exit = await w.kill("SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    const before = new Map((await w.records()).map((r) => [r.name, r]));
    expect(before.get(a.name)?.state).toBe("launching");
    expect(before.get(a.name)?.forgejoRunnerId).toBeUndefined();
    expect(before.get(b.name)?.state).toBe("pending");
    expect(w.nsc.calls("run")).toHaveLength(0);

    w.forgejo.delay(0, REGISTER);
    const sim = w.simulate();
    await w.start();
    await expectSettled(w, [a, b], sim);

    const history = (await w.runner(a.name)).history as { from: string; to: string; reason: string }[];
    expect(history.map((t) => t.to)).toEqual(["pending", "launching", "pending", "launching", "running", "finishing", "done"]);
    expect(history[2]?.reason).toMatch(/recovered after a restart/);
    expect((await w.runner(b.name)).history.map((t: { to: string }) => t.to)).toEqual([
      "pending",
      "launching",
      "running",
      "finishing",
      "done",
    ]);
    // The call the kill cut off was never answered; the relaunch registered exactly once more.
    const regs = w.forgejo.callsTo(REGISTER, "POST").filter((c) => (c.body as { name?: string }).name === a.name);
    expect(regs.map((c) => c.status)).toEqual([0, 201]);
    expectNoSecrets(w);
  });
});
