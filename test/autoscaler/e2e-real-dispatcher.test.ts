import { afterEach, describe, expect, it } from "vitest";
import { createAutoscaler } from "../../src/autoscaler/app.js";
import { buildAutoscalerDeps } from "../../src/autoscaler/wiring.js";
import type { Autoscaler } from "../../src/autoscaler/app.js";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { Metrics } from "../../src/http/metrics.js";
import { API_TOKEN, startHarness } from "../dispatcher/harness.js";
import type { Harness } from "../dispatcher/harness.js";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { waitFor } from "../helpers/wait.js";

let h: Harness | undefined;
let autoscaler: Autoscaler | undefined;
afterEach(async () => {
  await autoscaler?.stop();
  autoscaler = undefined;
  await h?.close();
  h = undefined;
});

/**
 * Both daemons for real (the dispatcher with its SQLite store, nsc driver and Linux launcher; the
 * autoscaler with its Forgejo client), against the fake Forgejo, the fake nsc and the runner
 * simulator that boots the real bootstrap script: queued jobs become runners, run, and end.
 */
describe("autoscaler + real dispatcher against the fakes", () => {
  it("every waiting job gets exactly one pinned runner that runs it; status explains while they launch", async () => {
    h = await startHarness({ forgejo: { version: "15.0.3", repos: [{ owner: "example", name: "app" }] }, timers: true, jobMs: 100 });
    const logs = captureLogger("debug");
    const config = autoscalerConfigSchema.parse({
      listen: "127.0.0.1:0",
      dispatcher: { url: h.url, token: API_TOKEN },
      instances: [
        {
          name: "example",
          forgejo: { base_url: h.forgejo.url, token: FAKE_ADMIN_TOKEN },
          scope: { level: "repository", owner: "example", name: "app" },
          poll_interval: "1s",
          targets: [{ labels: ["namespace-profile-linux-medium"], ttl: "20m" }],
        },
      ],
      auth: { tokens: ["status-token-0123456789abcdef"] },
    });
    autoscaler = await createAutoscaler({
      ...buildAutoscalerDeps(config, logs.logger, { metrics: new Metrics({ defaultMetrics: false }) }),
      tuning: { pollIntervalMs: 200 },
    });
    await autoscaler.app.listen({ host: "127.0.0.1", port: 0 });
    autoscaler.start();

    const jobs = [0, 1, 2].map(() => h!.forgejo.addJob({ repo: "example/app", runs_on: ["namespace-profile-linux-medium"] }));
    const seen = await waitFor(
      () => autoscaler!.reconcilers[0]!.status().waiting_jobs.find((j) => /runner nscloud-\w+ (pending|launching|running)/.test(j.reason)),
      { what: "status names a runner on its way", timeoutMs: 15_000 },
    );
    expect(seen.target).toBe("namespace-profile-linux-medium");
    await waitFor(() => jobs.every((j) => h!.forgejo.job(j.id)?.status === "success"), { what: "all jobs done", timeoutMs: 30_000 });

    for (const j of jobs) {
      const runners = await h.store.listRunners({ jobId: j.id });
      expect(runners, `runners for job ${j.id}`).toHaveLength(1);
      expect(runners[0]!.job).toMatchObject({ id: j.id, handle: j.handle });
      expect(runners[0]!.state).toMatch(/^(running|finishing|done)$/);
      // The runner that ran the job is the one pinned to it.
      const ran = h.forgejo.state.runners.find((r) => r.id === h!.forgejo.job(j.id)!.runnerId);
      expect(ran?.name).toBe(runners[0]!.name);
    }
    // Later passes ask for nothing more.
    const passes = autoscaler.reconcilers[0]!.passCount;
    await waitFor(() => autoscaler!.reconcilers[0]!.passCount >= passes + 3, { what: "more passes" });
    expect((await h.store.listRunners({})).length).toBe(3);
    expect(autoscaler.reconcilers[0]!.status().last_error).toBeNull();
  });
});
