import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { LABEL_RUNNER } from "../../src/namespace/launcher.js";
import type { RunnerRecord } from "../../src/store/types.js";
import type { FakeJob } from "../fakes/forgejo/index.js";
import { waitFor } from "../helpers/wait.js";
import { PLATFORMS, REPO, ourLabels, startPlatformWorld } from "./platform-harness.js";
import type { PlatformWorld } from "./platform-harness.js";

/**
 * The same lifecycle, word for word, for Linux (`nsc run`), macOS (Compute API) and Windows
 * (`nsc create` + WinRM): each runs through the real dispatcher, the real launcher of its platform
 * and that platform's fake (see platform-harness.ts). Only what genuinely differs between the
 * platforms lives in the driver: where an instance is, how the token reaches the machine, and what
 * the platform does when the job ends.
 */

const SCOPE = { level: "repository", owner: REPO.owner, name: REPO.name } as const;

describe.each(PLATFORMS)("%s: runner lifecycle through the real dispatcher and launcher", (platform) => {
  let w: PlatformWorld | undefined;

  afterEach(async () => {
    if (!w) return;
    const world = w;
    w = undefined;
    const logs = world.logs();
    const secrets = world.secrets();
    await world.close();
    // Runner tokens, the Namespace bearer, the Windows password, the PAT and the API token.
    expect(secrets.length).toBeGreaterThanOrEqual(5);
    for (const s of secrets) expect(logs.includes(s), "a secret reached the dispatcher's log").toBe(false);
  });

  const tick = () => w!.current.d.supervisor.tick();
  const runner = (name: string) => w!.current.store.getRunner(name);

  /** POST /api/v1/dispatch for one job-pinned runner with the platform's label. */
  async function dispatch(ttl = "30m"): Promise<{ job: FakeJob; name: string }> {
    const job = w!.forgejo.addJob({ repo: `${REPO.owner}/${REPO.name}`, runs_on: [w!.driver.label] });
    const res = await w!.request("POST", "/api/v1/dispatch", {
      labels: [w!.driver.label],
      ttl,
      scope: SCOPE,
      job: { id: job.id, handle: job.handle },
    });
    expect(res.status).toBe(202);
    expect(res.body.runners).toHaveLength(1);
    return { job, name: res.body.runners[0].name as string };
  }

  async function untilRunning(name: string): Promise<RunnerRecord> {
    return waitFor(
      async () => {
        w!.driver.progress();
        const r = await runner(name);
        if (r?.state === "failed") throw new Error(`runner failed: ${r.reason}`);
        return r?.state === "running" ? r : undefined;
      },
      { what: `${name} running`, timeoutMs: 20_000 },
    );
  }

  async function dispatchRunning(
    ttl?: string,
  ): Promise<{ job: FakeJob; name: string; rec: RunnerRecord; instanceId: string; forgejoId: number }> {
    const { job, name } = await dispatch(ttl);
    const rec = await untilRunning(name);
    return { job, name, rec, instanceId: rec.instanceId!, forgejoId: rec.forgejoRunnerId! };
  }

  it("recorded → launched → running: an instance with our labels on its own platform and an ephemeral registration in Forgejo", async () => {
    w = await startPlatformWorld(platform);
    const { name } = await dispatch();
    expect(name).toMatch(/^nscloud-[a-z2-7]{10}$/);

    const inst = await waitFor(() => w!.driver.instances().find((i) => i.labels[LABEL_RUNNER] === name), {
      what: "the instance in the platform's fake",
      timeoutMs: 20_000,
    });
    if (platform === "macos") {
      // CreateInstance answers CREATING; the launch is not done until the instance runs.
      expect(w.compute.instances.get(inst.id)!.status).toBe("CREATING");
      expect((await runner(name))!.state).toBe("launching");
    }
    const rec = await untilRunning(name);
    expect(rec).toMatchObject({ platform, instanceId: inst.id, registration: "ephemeral" });

    const view = await w.request("GET", `/api/v1/runners/${name}`);
    expect(view.body.history.map((t: { to: string }) => t.to)).toEqual(["pending", "launching", "running"]);
    expect(view.body.instance_id).toBe(inst.id);

    // Our labels are on the instance, in the platform's own fake.
    expect(w.driver.instance(inst.id)).toMatchObject({ live: true, labels: ourLabels(platform, name) });
    // Routed by label: exactly one instance was asked for, of this platform only.
    const asked = {
      linux: w.nsc.calls("run").length,
      macos: w.compute.calls("CreateInstance").length,
      windows: w.nsc.calls("create").length,
    };
    expect(asked).toEqual({ linux: 0, macos: 0, windows: 0, [platform]: 1 });

    // The ephemeral registration exists in Forgejo, and the machine got exactly its token.
    const reg = w.forgejo.runner(rec.forgejoRunnerId!);
    expect(reg).toMatchObject({
      name,
      ephemeral: true,
      deleted: false,
      registeredVia: "rest",
      scopeKey: `repo:${REPO.owner}/${REPO.name}`,
    });
    expect(w.driver.deliveredToken(name)).toBe(reg!.token);

    // Supervision leaves a healthy runner alone: not finished, not taken for an orphan.
    for (let i = 0; i < 2; i++) {
      const report = await tick();
      expect(report.observed[platform]).toBe(1);
      expect(report.finished).toEqual([]);
      expect(report.orphansDestroyed).toEqual([]);
    }
    expect((await runner(name))!.state).toBe("running");
    expect(w.driver.instance(inst.id)!.live).toBe(true);
  });

  it("job done → destroyed → done: the runner takes its job, and two looks later the instance is gone and the runner done", async () => {
    w = await startPlatformWorld(platform);
    const { job, name, instanceId, forgejoId } = await dispatchRunning();

    // forgejo-runner on the machine: connects with the token it was given and takes its pinned job.
    const reg = w.forgejo.runner(forgejoId)!;
    const connected = w.forgejo.connectRunner({
      uuid: reg.uuid,
      token: w.driver.deliveredToken(name),
      labels: [w.driver.label],
      handle: job.handle,
    });
    expect(connected.job?.id).toBe(job.id);
    w.forgejo.finishJob(job.id, "success");
    expect(w.forgejo.job(job.id)).toMatchObject({ status: "success", runnerId: forgejoId });
    // Forgejo deletes a consumed ephemeral runner on its own (contracts/forgejo-api.md §8.5).
    expect(w.forgejo.runner(forgejoId)?.deleted).toBe(true);
    w.driver.jobEnded(instanceId);

    // Nothing is decided on one look.
    await tick();
    expect((await runner(name))!.state).toBe("running");
    // Linux and macOS instances ended with the job; a Windows one is still up after one look.
    expect(w.driver.instance(instanceId)!.live).toBe(platform === "windows");
    await tick();
    const done = (await runner(name))!;
    expect(done.state).toBe("done");
    expect(done.history.map((t) => t.to)).toEqual(["pending", "launching", "running", "finishing", "done"]);

    const inst = w.driver.instance(instanceId)!;
    expect(inst.live).toBe(false);
    if (platform === "windows") {
      // A Windows machine does not end with its job: the registration watch saw Forgejo remove
      // the consumed runner (twice), and the dispatcher destroyed the instance.
      expect(done.reason).toBe(`job finished: Forgejo removed the ephemeral runner; instance ${instanceId} destroyed`);
      expect(inst.ended).toBe("destroy");
    } else {
      // Linux containers and macOS JOB applications end with the job; the instance went on its own.
      expect(done.reason).toBe(`instance ${instanceId} ended after its job finished`);
      expect(inst.ended).toBe("exit");
    }
    expect(w.driver.instances().filter((i) => i.live)).toEqual([]);
  });

  it("TTL: past the runner's TTL one tick destroys the instance and fails the runner with the TTL reason", async () => {
    w = await startPlatformWorld(platform);
    const { name, instanceId, forgejoId } = await dispatchRunning("20m");

    // Namespace's own clock stays short of the instance deadline, so what ends the instance
    // here is the dispatcher's TTL check and not the platform's deadline.
    w.advanceNamespace(10 * 60_000);
    w.advanceDispatcher(19 * 60_000);
    await tick();
    expect((await runner(name))!.state).toBe("running");
    expect(w.driver.instance(instanceId)!.live).toBe(true);

    w.advanceDispatcher(2 * 60_000);
    const report = await tick();
    expect(report.finished).toEqual([name]);
    const failed = (await runner(name))!;
    expect(failed.state).toBe("failed");
    expect(failed.reason).toBe("TTL 20m0s reached before the job finished; instance destroyed");
    expect(w.driver.instance(instanceId)).toMatchObject({ live: false, ended: "destroy" });
    // The registration the runner never used is deleted too.
    expect(w.forgejo.runner(forgejoId)?.deleted).toBe(true);
  });

  it("recovery after a restart: an interrupted launch is adopted without a second instance; an orphan goes after two ticks, not one", async () => {
    w = await startPlatformWorld(platform);
    const { name, instanceId } = await dispatchRunning();
    const launches = w.driver.launches();

    // The dispatcher stops, and its record says what a launch interrupted after the platform
    // created the instance (and before the record got its id) leaves behind: launching, no instance.
    await w.restart(async (store) => {
      const moved = await store.transition(name, ["running"], "launching", "test: the dispatcher stopped in the middle of this launch");
      expect(moved?.state).toBe("launching");
      const db = new Database(w!.config.dispatcher.state_path);
      try {
        expect(db.prepare("UPDATE runners SET instance_id = NULL WHERE name = ?").run(name).changes).toBe(1);
      } finally {
        db.close();
      }
      expect((await store.getRunner(name))!.instanceId).toBeUndefined();
    });

    const adopted = (await runner(name))!;
    expect(adopted).toMatchObject({ state: "running", instanceId });
    expect(adopted.reason).toBe(`recovered after a restart: adopted instance ${instanceId} whose launch was interrupted`);
    await w.current.d.scheduler.pass();
    expect(w.driver.launches()).toBe(launches);
    expect(
      w.driver
        .instances()
        .filter((i) => i.live && i.labels[LABEL_RUNNER] === name)
        .map((i) => i.id),
    ).toEqual([instanceId]);

    // An instance with our owner and platform labels that no record explains, and one of another dispatcher.
    const orphan = await w.driver.addInstance(ourLabels(platform, "nscloud-orphan0000"));
    const foreign = await w.driver.addInstance(ourLabels(platform, "nscloud-foreign000", "another-dispatcher"));
    const first = await tick();
    expect(first.orphansDestroyed).toEqual([]);
    expect(w.driver.instance(orphan)!.live).toBe(true);
    const second = await tick();
    expect(second.orphansDestroyed).toEqual([orphan]);
    expect(w.driver.instance(orphan)).toMatchObject({ live: false, ended: "destroy" });
    expect(w.driver.instance(foreign)!.live).toBe(true);

    // The adopted runner is supervised as any other.
    expect((await runner(name))!.state).toBe("running");
    expect(w.driver.instance(instanceId)!.live).toBe(true);
  });

  it("cancel: DELETE /api/v1/runners/{name} destroys the instance and deletes the registration", async () => {
    w = await startPlatformWorld(platform);
    const { name, instanceId, forgejoId } = await dispatchRunning();

    const res = await w.request("DELETE", `/api/v1/runners/${name}?reason=operator%20test`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name, state: "failed", reason: "cancelled through the API (operator test)", instance_id: instanceId });
    const text = JSON.stringify(res.body);
    for (const s of w.secrets()) expect(text.includes(s), "a secret in the cancel answer").toBe(false);

    expect(w.driver.instance(instanceId)).toMatchObject({ live: false, ended: "destroy" });
    expect(w.forgejo.runner(forgejoId)?.deleted).toBe(true);
    const deletes = w.forgejo.callsTo(`/api/v1/repos/${REPO.owner}/${REPO.name}/actions/runners/${forgejoId}`, "DELETE");
    expect(deletes.map((c) => c.status)).toEqual([204]);

    // Nothing of ours is left for supervision to find.
    const report = await tick();
    expect(report.observed[platform]).toBe(0);
    expect(report.orphansDestroyed).toEqual([]);
  });
});
