import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

let h: Harness | undefined;
const own = closedAfterEach();

async function tickUntil(h: Harness, cond: () => Promise<boolean> | boolean, what: string) {
  await waitFor(
    async () => {
      await h.dispatcher.supervisor.tick();
      return cond();
    },
    { timeoutMs: 15_000, intervalMs: 50, what },
  );
}

describe("dispatcher end to end against fake Forgejo 15 and fake nsc", () => {
  it("runs the README curl: one job-pinned ephemeral runner, launched, job done, instance destroyed", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "example", name: "app" }] } }));
    const job = h.forgejo.addJob({ repo: "example/app", runs_on: ["namespace-profile-linux-medium"] });
    const res = await h.request("POST", "/api/v1/dispatch", {
      count: 1,
      ttl: "20m",
      labels: ["namespace-profile-linux-medium"],
      scope: { level: "repository", owner: "example", name: "app" },
      job: { id: job.id, handle: job.handle },
    });
    expect(res.status).toBe(202);
    const name = res.body.runners[0].name as string;
    expect(name).toMatch(/^nscloud-[a-z2-7]{10}$/);
    expect(res.body.status_url).toBe(`/api/v1/dispatches/${res.body.dispatch_id}`);

    const running = await waitFor(
      async () => {
        const r = await h!.request("GET", `/api/v1/runners/${name}`);
        return r.body.state === "running" ? r.body : undefined;
      },
      { what: "runner running" },
    );
    expect(running.registration).toBe("ephemeral");

    const run = h.nsc.calls("run")[0]!;
    expect(run.argv).toEqual(
      expect.arrayContaining(["-o", "json", "--duration", "1200s", "--image", "code.forgejo.org/forgejo/runner:12.13.2", "--name", name]),
    );
    expect(run.argv).toContain(`forgejo-nsc.runner=${name}`);
    expect(run.argv.indexOf("--")).toBeGreaterThan(0);
    expect(run.env.NS_DO_NOT_UPDATE).toBe("1");
    const reg = h.forgejo.callsTo("/repos/example/app/actions/runners", "POST");
    expect(reg).toHaveLength(1);
    expect(reg[0]!.body).toMatchObject({ name, ephemeral: true });

    await waitFor(() => h!.forgejo.job(job.id)?.status === "success", { what: "job finished" });
    await tickUntil(h, async () => (await h!.store.getRunner(name))?.state === "done", "runner done");
    const done = await h.request("GET", `/api/v1/runners/${name}`);
    // Either signal may come first: the instance ending, or Forgejo removing the consumed ephemeral runner.
    expect(done.body.reason).toMatch(/ended after its job finished|job finished: Forgejo removed the ephemeral runner/);
    expect(done.body.history.map((t: { to: string }) => t.to)).toEqual(["pending", "launching", "running", "finishing", "done"]);
    expect(h.nsc.instances()).toHaveLength(0);
    // The runner took exactly the job it was pinned to.
    expect(h.forgejo.job(job.id)?.runnerId).toBeDefined();
  });
});
