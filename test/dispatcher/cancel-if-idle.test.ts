import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/**
 * DELETE /api/v1/runners/{name}?if_idle=true — how the autoscaler stops idle warm runners: the
 * dispatcher asks Forgejo once more, right before, and leaves a runner that took a job meanwhile.
 */
let h: Harness | undefined;
const own = closedAfterEach();

const SCOPE = { level: "repository", owner: "example", name: "app" } as const;

async function runningRunner(harness: Harness, job?: { id: number; handle: string }): Promise<string> {
  const res = await harness.request("POST", "/api/v1/dispatch", {
    labels: ["namespace-profile-linux-medium"],
    scope: SCOPE,
    ...(job ? { job } : {}),
  });
  expect(res.status).toBe(202);
  const name = res.body.runners[0].name as string;
  await waitFor(async () => (await harness.store.getRunner(name))?.state === "running", { what: "runner running" });
  return name;
}

describe("cancel if idle", () => {
  it("leaves a runner that is running a job (409); an operator's cancel without if_idle still stops it", async () => {
    // The job runs long enough to be busy while the cancel arrives.
    h = own(await startHarness({ forgejo: { repos: [{ owner: "example", name: "app" }] }, timers: true, jobMs: 60_000 }));
    const job = h.forgejo.addJob({ repo: "example/app", runs_on: ["namespace-profile-linux-medium"] });
    const busy = await runningRunner(h, { id: job.id, handle: job.handle });
    await waitFor(() => h!.forgejo.job(job.id)?.status === "running", { what: "the job to be taken" });

    const refused = await h.request("DELETE", `/api/v1/runners/${busy}?if_idle=true&reason=warm%20pool%20shrunk`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(`runner ${busy} is running a job; it was not stopped (if_idle=true)`);
    expect((await h.store.getRunner(busy))!.state).toBe("running");
    expect(h.nsc.instances().filter((i) => !i.destroyed_at)).toHaveLength(1);

    // Without if_idle the operator's cancel still stops it.
    const forced = await h.request("DELETE", `/api/v1/runners/${busy}?reason=operator`);
    expect(forced.status).toBe(200);
    expect(forced.body.state).toMatch(/^(finishing|failed)$/);
  });

  it("stops a registered runner that is idle", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "example", name: "app" }] }, timers: true }));
    const idle = await runningRunner(h);
    // The simulated runner registers and polls, taking nothing.
    await waitFor(() => h!.forgejo.state.runners.some((r) => r.name === idle && r.online && !r.busy), {
      what: "the runner idle in Forgejo",
    });
    const res = await h.request("DELETE", `/api/v1/runners/${idle}?if_idle=true&reason=warm%20pool%20shrunk`);
    expect(res.status).toBe(200);
    expect(res.body.state).toMatch(/^(finishing|failed)$/);
  });

  it("answers 503 and stops nothing when Forgejo cannot be asked", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "example", name: "app" }] }, timers: true }));
    const name = await runningRunner(h);
    h.forgejo.failNext(/\/actions\/runners/, 500, 5, { method: "GET" });
    const res = await h.request("DELETE", `/api/v1/runners/${name}?if_idle=true`);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("10");
    expect(res.body.message).toMatch(
      new RegExp(`^cannot tell whether runner ${name} is idle \\(.*\\); it was not stopped, ask again later$`),
    );
    expect((await h.store.getRunner(name))!.state).toBe("running");
  });
});
