import { describe, expect, it } from "vitest";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { API_TOKEN, startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

let h: Harness | undefined;
const own = closedAfterEach();

const repoScope = { level: "repository", owner: "acme", name: "app" };

async function dispatch(h: Harness, extra: Record<string, unknown> = {}) {
  const r = await h.request("POST", "/api/v1/dispatch", { labels: ["linux-x"], scope: repoScope, ...extra });
  expect(r.status).toBe(202);
  return r.body.runners.map((x: { name: string }) => x.name) as string[];
}

async function settle(h: Harness, name: string, states: string[], tick = true) {
  return waitFor(
    async () => {
      if (tick) await h.dispatcher.supervisor.tick();
      const r = await h.store.getRunner(name);
      return r && states.includes(r.state) ? r : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50, what: `${name} in ${states.join("/")}` },
  );
}

describe("Forgejo failures become failed runners that say why", () => {
  it.each([
    [401, /token was rejected|forgejo\.token/i],
    [403, /write:repository/],
    [404, /does not exist|Actions/i],
    [500, /500/],
  ])("HTTP %i", async (status, pattern) => {
    h = own(
      await startHarness({
        forgejo: { repos: [{ owner: "acme", name: "app" }] },
        simulate: false,
        yaml: "dispatcher:\n  launch_attempts: 1\n",
      }),
    );
    h.forgejo.failNext("/actions/runners", status, 5, { method: "POST" });
    const [name] = await dispatch(h);
    const r = await settle(h, name!, ["failed"], false);
    expect(r.reason).toMatch(/launch failed \(attempt 1\/1\)/);
    expect(r.reason).toMatch(pattern);
    expect(r.reason).toContain("repo:acme/app");
    expect(r.reason).not.toContain(FAKE_ADMIN_TOKEN);
    expect(h.nsc.calls("run")).toHaveLength(0);
  });

  it("a Forgejo timeout is retried, then fails naming the timeout", async () => {
    h = own(
      await startHarness({
        forgejo: { repos: [{ owner: "acme", name: "app" }] },
        simulate: false,
        yaml: "forgejo:\n  timeout: 300ms\ndispatcher:\n  launch_attempts: 1\n",
      }),
    );
    h.forgejo.delay(2_000, "/actions/runners");
    const [name] = await dispatch(h);
    const r = await settle(h, name!, ["failed"], false);
    expect(r.reason).toMatch(/did not answer within|timed? ?out/i);
  });
});

describe("nsc failures", () => {
  it("a capacity error is retried with backoff and then fails; no instance is left", async () => {
    h = own(
      await startHarness({
        forgejo: { repos: [{ owner: "acme", name: "app" }] },
        simulate: false,
        knobs: { runCapacity: true },
        yaml: "dispatcher:\n  launch_attempts: 2\n",
      }),
    );
    const [name] = await dispatch(h);
    const retrying = await waitFor(
      async () => {
        const r = await h!.store.getRunner(name!);
        return r?.state === "pending" && r.reason.startsWith("launch attempt 1/2 failed") ? r : undefined;
      },
      { what: "retry scheduled" },
    );
    expect(retrying.reason).toMatch(/capacity/);
    expect(retrying.reason).toMatch(/retrying in 5s/);
    // The unused ephemeral registration of the failed attempt is deleted.
    expect(h.forgejo.state.runners.filter((r) => !r.deleted)).toHaveLength(0);
    const failed = await settle(h, name!, ["failed"], false);
    expect(failed.reason).toMatch(/attempt 2\/2/);
    expect(h.nsc.calls("run")).toHaveLength(2);
    expect(h.nsc.instances()).toHaveLength(0);
  });

  it("a wait timeout leaves an instance behind, which is destroyed", async () => {
    h = own(
      await startHarness({
        forgejo: { repos: [{ owner: "acme", name: "app" }] },
        simulate: false,
        knobs: { runNeverReady: true, neverReadyDelayMs: 50 },
        yaml: "dispatcher:\n  launch_attempts: 1\n",
      }),
    );
    const [name] = await dispatch(h);
    await settle(h, name!, ["failed"], false);
    const all = h.nsc.instances({ includeDestroyed: true });
    expect(all).toHaveLength(1);
    expect(all[0]!.destroyed_at).not.toBeNull();
    expect(h.nsc.calls("destroy").some((c) => c.argv.includes("--force") && c.argv.includes(all[0]!.id))).toBe(true);
  });

  it("a transient list failure while the job runs does not kill the runner", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] }, simulate: false }));
    const [name] = await dispatch(h);
    const running = await settle(h, name!, ["running"], false);
    h.nsc.setKnobs({ transient: { list: 3 } });
    for (let i = 0; i < 3; i++) {
      const report = await h.dispatcher.supervisor.tick();
      expect(report.observed.linux).toBe("error");
    }
    const tick = await h.dispatcher.supervisor.tick();
    expect(tick.observed.linux).toBe(1);
    expect((await h.store.getRunner(name!))!.state).toBe("running");
    expect(h.nsc.instances().map((i) => i.id)).toEqual([running.instanceId]);
  });

  it("an instance missing from one list is not judged until a second look agrees", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] }, simulate: false }));
    const [name] = await dispatch(h);
    const running = await settle(h, name!, ["running"], false);
    h.nsc.exitContainer(running.instanceId!, 0);
    await h.dispatcher.supervisor.tick();
    expect((await h.store.getRunner(name!))!.state).toBe("running");
    await h.dispatcher.supervisor.tick();
    const r = (await h.store.getRunner(name!))!;
    // The runner never took a job: its ephemeral registration still existed, so this is a failure.
    expect(r.state).toBe("failed");
    expect(r.reason).toMatch(/ended before forgejo-runner finished a job/);
  });

  it("TTL expiry destroys the instance (fake clocks, no sleeping)", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] }, simulate: false }));
    const [name] = await dispatch(h, { ttl: "20m" });
    const running = await settle(h, name!, ["running"], false);
    h.advance(19 * 60_000);
    await h.dispatcher.supervisor.tick();
    expect((await h.store.getRunner(name!))!.state).toBe("running");
    h.advance(2 * 60_000);
    await h.dispatcher.supervisor.tick();
    const r = (await h.store.getRunner(name!))!;
    expect(r.state).toBe("failed");
    expect(r.reason).toBe("TTL 20m0s reached before the job finished; instance destroyed");
    expect(h.nsc.instances().some((i) => i.id === running.instanceId)).toBe(false);
  });
});

describe("registration tokens on Forgejo 11 and every scope", () => {
  it.each([
    [{ level: "instance" }, "/api/v1/admin/runners/registration-token"],
    [{ level: "organization", owner: "acme" }, "/api/v1/orgs/acme/actions/runners/registration-token"],
    [{ level: "repository", owner: "acme", name: "app" }, "/api/v1/repos/acme/app/actions/runners/registration-token"],
    [{ level: "user" }, "/api/v1/user/actions/runners/registration-token"],
  ])("%o", async (scope, path) => {
    h = own(
      await startHarness({
        forgejo: {
          version: "11.0.0",
          orgs: [{ name: "acme", owners: ["admin"] }],
          repos: [
            { owner: "acme", name: "app" },
            { owner: "admin", name: "own" },
          ],
        },
        jobMs: 50,
      }),
    );
    // A user-level runner serves the token owner's own repositories only.
    const job = h.forgejo.addJob({ repo: scope.level === "user" ? "admin/own" : "acme/app", runs_on: ["linux-x"] });
    const [name] = await dispatch(h, { scope });
    await settle(h, name!, ["running", "done"], false);
    expect(h.forgejo.callsTo(path, "GET")).toHaveLength(1);
    const run = h.nsc.calls("run")[0]!;
    const script = run.argv[run.argv.length - 1]!;
    expect(script).toContain("forgejo-runner register --no-interactive");
    expect(script).not.toContain("--handle");
    await waitFor(() => h!.forgejo.job(job.id)?.status === "success", { what: "job done" });
    const r = await settle(h, name!, ["done"]);
    expect(r.registration).toBe("token");
  });
});

describe("request values reach the instance", () => {
  it("uses defaults, or the request's overrides, and keeps env values with = , and quotes intact", async () => {
    h = own(
      await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] }, yaml: "namespace:\n  environment: {GLOBAL: one}\n" }),
    );
    const env = { URL_WITH_QUERY: "https://h/?a=b,c=d", QUOTED: 'say "hi"', PLAIN: "simple" };
    const [dflt] = await dispatch(h);
    const [custom] = await dispatch(h, { machine_type: "linux/arm64:8x16", image: "example.com/runner:1", ttl: "45m", env });
    await settle(h, dflt!, ["running", "done"], false);
    await settle(h, custom!, ["running", "done"], false);
    const runs = h.nsc.calls("run");
    const byName = (n: string) => runs.find((c) => c.argv.includes(n))!.argv;
    expect(byName(dflt!)).toEqual(expect.arrayContaining(["--machine_type", "4x8", "--duration", "1800s"]));
    expect(byName(custom!)).toEqual(
      expect.arrayContaining(["--machine_type", "linux/arm64:8x16", "--image", "example.com/runner:1", "--duration", "2700s"]),
    );
    expect(byName(custom!)).toContain("PLAIN=simple");
    expect(byName(custom!)).toContain("GLOBAL=one");
    // What the runner process really saw: the fake forgejo-runner recorded FORGEJO_* only, so check via the simulator's shell.
    const inst = h.nsc.instances({ includeDestroyed: true }).find((i) => i.labels["forgejo-nsc.runner"] === custom)!;
    const script = inst.args![2]!;
    const { execFileSync } = await import("node:child_process");
    const out = execFileSync("/bin/sh", [
      "-c",
      `${script
        .split("\n")
        .filter((l) => l.startsWith("export "))
        .join("\n")}\nprintf '%s|%s' "$URL_WITH_QUERY" "$QUOTED"`,
    ]).toString();
    expect(out).toBe(`${env.URL_WITH_QUERY}|${env.QUOTED}`);
  });
});

describe("the HTTP request never owns the runner", () => {
  it("?wait=launched holds the response until the runner runs; failures are listed", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] }, simulate: false, timers: true }));
    const ok = await h.request("POST", "/api/v1/dispatch?wait=launched&timeout=20s", { labels: ["linux-x"], scope: repoScope, count: 2 });
    expect(ok.status).toBe(202);
    expect(ok.body.wait).toEqual({ for: "launched", complete: true });
    expect(ok.body.runners.every((r: { state: string }) => r.state === "running")).toBe(true);
    h.nsc.setKnobs({ runCapacity: true });
    const bad = await h.request("POST", "/api/v1/dispatch?wait=launched&timeout=1s", { labels: ["linux-x"], scope: repoScope });
    expect(bad.body.wait.complete).toBe(false);
  });

  it("a client that disconnects mid-request cancels nothing", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] }, timers: true, knobs: { createDelayMs: 500 } }));
    const job = h.forgejo.addJob({ repo: "acme/app", runs_on: ["linux-x"] });
    const abort = new AbortController();
    const pending = fetch(`${h.url}/api/v1/dispatch?wait=finished&timeout=60s`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ labels: ["linux-x"], scope: repoScope, job: { id: job.id, handle: job.handle } }),
      signal: abort.signal,
    }).catch((e: Error) => e);
    await waitFor(() => h!.nsc.calls("run").length > 0, { what: "nsc run started" });
    abort.abort();
    expect(await pending).toBeInstanceOf(Error);
    await waitFor(() => h!.forgejo.job(job.id)?.status === "success", { what: "job ran anyway", timeoutMs: 20_000 });
    const [r] = await h.store.listRunners({ jobId: job.id });
    await settle(h, r!.name, ["done"], false);
  });
});

describe("secrets", () => {
  it("never appear in logs or responses", async () => {
    h = own(await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] } }));
    const job = h.forgejo.addJob({ repo: "acme/app", runs_on: ["linux-x"] });
    const [name] = await dispatch(h, { job: { id: job.id, handle: job.handle }, env: { MY_SECRET: "s3cr3t-value-xyz" } });
    await waitFor(() => h!.forgejo.job(job.id)?.status === "success", { what: "job" });
    await settle(h, name!, ["done"]);
    const view = await h.request("GET", `/api/v1/runners/${name}`);
    const runnerTokens = h.forgejo.state.runners.map((r) => r.token).filter(Boolean) as string[];
    expect(runnerTokens.length).toBeGreaterThan(0);
    const metrics = await fetch(`${h.url}/metrics`).then((r) => r.text());
    for (const text of [h.logs(), JSON.stringify(view.body), metrics]) {
      expect(text).not.toContain(FAKE_ADMIN_TOKEN);
      expect(text).not.toContain(API_TOKEN);
      expect(text).not.toContain("s3cr3t-value-xyz");
      for (const t of runnerTokens) expect(text).not.toContain(t);
    }
    expect(h.logs()).toContain(name);
  });
});
