import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/**
 * Where the runner token travels on the dispatcher host, per namespace.linux_launch (issue 10 item
 * 4, docs/security.md "The runner token on the dispatcher host"): with compute_api it is in the
 * CreateInstance body only; with nsc (the default) it is in `nsc run`'s argv, as the docs say.
 */

let h: Harness | undefined;
const own = closedAfterEach();

const REPO = { owner: "example", name: "app" } as const;
const LABEL = "namespace-profile-linux-medium";

async function dispatchOne(h: Harness): Promise<{ name: string; jobId: number }> {
  const job = h.forgejo.addJob({ repo: `${REPO.owner}/${REPO.name}`, runs_on: [LABEL] });
  const res = await h.request("POST", "/api/v1/dispatch", {
    count: 1,
    ttl: "20m",
    labels: [LABEL],
    scope: { level: "repository", ...REPO },
    job: { id: job.id, handle: job.handle },
  });
  expect(res.status).toBe(202);
  return { name: res.body.runners[0].name as string, jobId: job.id };
}

/** The token Forgejo issued for this runner (the fake keeps it in clear). */
function runnerToken(h: Harness, name: string): string {
  const token = h.forgejo.state.runners.find((r) => r.name === name)?.token;
  expect(token).toBeTruthy();
  return token!;
}

describe("Linux runner token exposure on the dispatcher host", () => {
  it("compute_api: the token goes in the CreateInstance body only; the runner runs its job and its instance is destroyed", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ ...REPO }] }, computeApi: true }));
    const { name, jobId } = await dispatchOne(h);
    await waitFor(async () => (await h!.request("GET", `/api/v1/runners/${name}`)).body.state === "running", { what: "runner running" });
    const token = runnerToken(h, name);

    // It reached the instance through the request body, and the runner in it authenticated with it.
    const [create] = h.compute!.calls("CreateInstance");
    const container = (create!.body as { containers: { environment: Record<string, string> }[] }).containers[0]!;
    expect(container.environment.FORGEJO_RUNNER_TOKEN).toBe(token);
    const inst = h.nsc.instances({ includeDestroyed: true }).find((i) => i.labels["forgejo-nsc.runner"] === name)!;
    expect(inst.created_by).toBe("compute-api");
    expect(inst.env!.FORGEJO_RUNNER_TOKEN).toBe(token);
    await waitFor(() => h!.sim!.events.some((e) => e.type === "connected" && e.runner === name), {
      what: "the runner to connect with its token",
    });

    await waitFor(() => h!.forgejo.job(jobId)?.status === "success", { what: "job finished" });
    await waitFor(
      async () => {
        await h!.dispatcher.supervisor.tick();
        return (await h!.store.getRunner(name))?.state === "done";
      },
      { timeoutMs: 15_000, intervalMs: 50, what: "runner done" },
    );
    expect(h.nsc.instances()).toEqual([]);
    expect(h.forgejo.job(jobId)?.runnerId).toBeDefined();
    const done = await h.request("GET", `/api/v1/runners/${name}`);
    expect(done.body.reason).toMatch(/ended after its job finished|job finished: Forgejo removed the ephemeral runner/);

    // No nsc call carried it: not `run` (there was none), not list/destroy, not the fake's own calls.
    expect(h.nsc.calls("run")).toEqual([]);
    expect(h.nsc.calls().length).toBeGreaterThan(0);
    for (const call of h.nsc.calls()) expect(call.argv.join("\n")).not.toContain(token);
    expect(readFileSync(h.nsc.logPath, "utf8")).not.toContain(token);
    expect(h.logs()).not.toContain(token);
    const runner = await h.request("GET", `/api/v1/runners/${name}`);
    expect(JSON.stringify(runner.body)).not.toContain(token);
  });

  it("nsc (the default): the token is an `nsc run -e FORGEJO_RUNNER_TOKEN=…` argument while nsc run runs, as the docs say", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ ...REPO }] } }));
    expect(h.config.namespace.linux_launch).toBe("nsc");
    const { name } = await dispatchOne(h);
    await waitFor(async () => (await h!.request("GET", `/api/v1/runners/${name}`)).body.state === "running", { what: "runner running" });
    const token = runnerToken(h, name);
    const [run] = h.nsc.calls("run");
    const at = run!.argv.indexOf(`FORGEJO_RUNNER_TOKEN=${token}`);
    expect(at).toBeGreaterThan(0);
    expect(run!.argv[at - 1]).toBe("-e");
    expect(at).toBeLessThan(run!.argv.indexOf("--"));
    // The exposure is the process's command line, not our logs.
    expect(h.logs()).not.toContain(token);
  });
});
