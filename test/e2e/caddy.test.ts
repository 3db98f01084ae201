import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeHook, FakeJob } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { startRunnerSimulator } from "../fakes/runner-sim.js";
import { recordSecrets, TEST_API_TOKEN, TEST_API_TOKEN_NEXT, TEST_STATUS_TOKEN, TEST_WEBHOOK_SECRET } from "../helpers/secrets.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { caddyBinary, caddyPorts, OUTSIDE_CLIENT, PRIVATE_CLIENT, ROOT, send, startCaddy } from "./caddy.js";
import type { Caddy, Reply } from "./caddy.js";
import { listeningUrl, startProcess } from "./processes.js";
import type { TestProcess } from "./processes.js";

/** Generous: 2 cores, and the rest of the suite runs beside this file. */
const DEADLINE_MS = 45_000;
/** A third client address: the one that hits the dispatcher's rate limit. */
const GREEDY_CLIENT = "127.0.0.3";
const RATE_LIMIT = 5;
const REPO = { level: "repository", owner: "example", name: "app" } as const;
const SMALL = "namespace-profile-linux-small";
const MEDIUM = "namespace-profile-linux-medium";
const INSTANCE = "forgejo";

/**
 * Issue 6, "Behind Caddy": a real Caddy running the shipped deploy/Caddyfile.example (adapted only
 * for plain HTTP on loopback) in front of the real dispatcher and autoscaler processes, with the
 * fake Forgejo, the fake nsc and the runner simulator in this process. A dispatch and a signed
 * webhook go through Caddy, and the daemons see the client's address, not Caddy's.
 */
describe("both daemons behind a real Caddy", { timeout: 120_000 }, () => {
  let tmp: { dir: string; cleanup: () => void };
  let forgejo: FakeForgejo;
  let nsc: FakeNsc;
  let sim: ReturnType<typeof startRunnerSimulator> | undefined;
  let dispatcher: TestProcess;
  let autoscaler: TestProcess;
  let caddy: Caddy;
  let directDispatcher: string;
  const procs: TestProcess[] = [];
  let firstJob: FakeJob;

  const logs = () =>
    procs.map((p) => `--- ${p.name} (stdout)\n${p.stdout().slice(-4000)}\n--- ${p.name} (stderr)\n${p.stderr().slice(-2000)}`).join("\n");
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const json = { "content-type": "application/json" };

  function daemon(name: "dispatcher" | "autoscaler", config: Record<string, unknown>): TestProcess {
    const file = join(tmp.dir, `${name}.yaml`);
    writeFileSync(file, stringify(config));
    const p = startProcess(name, process.execPath, ["--import", "tsx", join(ROOT, "src/bin", `${name}.ts`), "--config", file], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmp.dir, ...nsc.env },
    });
    procs.push(p);
    return p;
  }

  const portOf = (url: string) => Number(new URL(url).port);

  async function autoscalerStatus(): Promise<Reply> {
    return send(`${caddy.autoscalerUrl}/api/v1/status`, { headers: bearer(TEST_STATUS_TOKEN) });
  }

  beforeAll(async () => {
    // Fails here, with the install hint, when Caddy is missing: this test is never skipped.
    caddyBinary();
    tmp = tempDir("fnsc-caddy-e2e-");
    forgejo = await startFakeForgejo({ repos: [{ owner: REPO.owner, name: REPO.name }], autoDeliver: false });
    nsc = createFakeNsc(join(tmp.dir, "nsc"));
    sim = startRunnerSimulator({ nsc, forgejo, dir: join(tmp.dir, "sim"), jobMs: 100 });

    const secret = (name: string, value: string) => {
      const f = join(tmp.dir, name);
      writeFileSync(f, `${value}\n`, { mode: 0o600 });
      return f;
    };
    const patFile = secret("forgejo-pat", FAKE_ADMIN_TOKEN);
    const ports = await caddyPorts();

    dispatcher = daemon("dispatcher", {
      listen: "127.0.0.1:0",
      forgejo: { base_url: forgejo.url, token_file: patFile },
      namespace: { nsc_binary: nsc.bin, workdir: join(tmp.dir, "runner-work"), wait_timeout: "60s", max_parallel: 4 },
      dispatcher: { state_path: join(tmp.dir, "dispatcher.db"), supervise_interval: "200ms" },
      // Two tokens at once (rotation): people use the first, the autoscaler the second.
      auth: { tokens_file: secret("dispatcher-tokens", `${TEST_API_TOKEN}\n${TEST_API_TOKEN_NEXT}`) },
      // Caddy connects from 127.0.0.1; the client address is in X-Forwarded-For.
      http: { trust_proxy: "127.0.0.1", rate_limit_per_minute: RATE_LIMIT },
      log: { level: "debug" },
    });
    directDispatcher = await listeningUrl(dispatcher, DEADLINE_MS);

    autoscaler = daemon("autoscaler", {
      listen: "127.0.0.1:0",
      // Same host: the autoscaler talks to the dispatcher directly, not through Caddy.
      dispatcher: { url: directDispatcher, token_file: secret("autoscaler-dispatcher-token", TEST_API_TOKEN_NEXT) },
      instances: [
        {
          name: INSTANCE,
          forgejo: { base_url: forgejo.url, token_file: patFile },
          scope: REPO,
          // Only a webhook can make it look again within the test.
          poll_interval: "1h",
          webhook_secret_file: secret("webhook-secret", TEST_WEBHOOK_SECRET),
          // Forgejo delivers to Caddy's public address; Caddy passes /webhook/* through.
          webhook: { url: `http://127.0.0.1:${ports.autoscaler}/webhook/${INSTANCE}` },
          targets: [{ name: "linux-medium", labels: [MEDIUM], ttl: "10m" }],
        },
      ],
      webhooks: { debounce: "100ms" },
      auth: { tokens_file: secret("status-tokens", TEST_STATUS_TOKEN) },
      http: { trust_proxy: "127.0.0.1" },
      log: { level: "debug" },
    });
    const directAutoscaler = await listeningUrl(autoscaler, DEADLINE_MS);

    caddy = await startCaddy({
      dir: tmp.dir,
      ports,
      upstreams: { dispatcher: portOf(directDispatcher), autoscaler: portOf(directAutoscaler) },
      timeoutMs: DEADLINE_MS,
    });
    procs.push(caddy.process);
  }, 120_000);

  afterAll(async () => {
    sim?.stop();
    // Record what the fake minted, so the whole-suite scan also looks for these exact values.
    if (forgejo) recordSecrets([...forgejo.state.runners.map((r) => r.token), ...forgejo.state.registrationTokens.map((t) => t.token)]);
    await Promise.all(procs.map((p) => p.stop()));
    nsc?.destroyAll();
    await forgejo?.close();
    tmp?.cleanup();
  }, 60_000);

  it("passes the bearer token through to the dispatcher: 401 without it, 202 with it, and the runner runs its job", async () => {
    firstJob = forgejo.addJob({ repo: `${REPO.owner}/${REPO.name}`, runs_on: [SMALL], name: "through-caddy" });
    const body = JSON.stringify({ labels: [SMALL], scope: REPO, ttl: "10m", job: { id: firstJob.id, handle: firstJob.handle } });
    const url = `${caddy.dispatcherUrl}/api/v1/dispatch`;

    const none = await send(url, { method: "POST", from: OUTSIDE_CLIENT, headers: json, body });
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ error: "unauthorized" });
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer /);
    const wrong = await send(url, {
      method: "POST",
      from: OUTSIDE_CLIENT,
      headers: { ...json, ...bearer("not-a-dispatcher-token-0000") },
      body,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toMatchObject({ error: "unauthorized", message: "bearer token not accepted" });
    // Caddy's header policy from the example applies to the daemon's answers.
    expect(wrong.headers["x-content-type-options"]).toBe("nosniff");
    expect(wrong.headers.server).toBeUndefined();

    const ok = await send(url, { method: "POST", from: OUTSIDE_CLIENT, headers: { ...json, ...bearer(TEST_API_TOKEN) }, body });
    expect(ok.status, ok.text).toBe(202);
    const name = ok.json.runners[0].name as string;

    // With trust_proxy, the dispatcher logs the client behind Caddy, not Caddy.
    const seen = await waitFor(
      () =>
        dispatcher
          .jsonLines()
          .find(
            (l) =>
              l.msg === "incoming request" &&
              (l.req as { method?: string; url?: string } | undefined)?.method === "POST" &&
              (l.req as { url?: string }).url === "/api/v1/dispatch" &&
              (l.req as { remoteAddress?: string }).remoteAddress === OUTSIDE_CLIENT,
          ),
      { timeoutMs: DEADLINE_MS, what: `a dispatcher log line for POST /api/v1/dispatch from ${OUTSIDE_CLIENT}\n${logs()}` },
    );
    expect(seen).toBeDefined();

    // The runner's life, read through Caddy with the second (rotated-in) token.
    const done = await waitFor(
      async () => {
        const r = await send(`${caddy.dispatcherUrl}/api/v1/runners/${name}`, { headers: bearer(TEST_API_TOKEN_NEXT) });
        return r.status === 200 && r.json.state === "done" ? r.json : undefined;
      },
      { timeoutMs: DEADLINE_MS, intervalMs: 100, what: `runner ${name} done\n${logs()}` },
    );
    expect(done.job).toMatchObject({ id: firstJob.id, handle: firstJob.handle });
    expect(forgejo.job(firstJob.id)?.status).toBe("success");
    expect(nsc.calls((c) => c.command === "run" && c.argv.includes(name))).toHaveLength(1);
    expect(sim?.events.filter((e) => e.type === "took_job" && e.job === firstJob.id)).toHaveLength(1);
    await waitFor(() => nsc.instances().every((i) => i.labels["forgejo-nsc.runner"] !== name), {
      timeoutMs: DEADLINE_MS,
      what: `the instance of ${name} destroyed`,
    });
  });

  it("rate-limits per client address as Caddy forwards it, and a forged X-Forwarded-For does not get around it", async () => {
    const url = `${caddy.dispatcherUrl}/api/v1/dispatch`;
    // Authenticated but invalid: each counts against the limit without launching anything.
    const invalid = JSON.stringify({ count: 0, labels: [SMALL] });
    for (let i = 0; i < RATE_LIMIT; i++) {
      const r = await send(url, { method: "POST", from: GREEDY_CLIENT, headers: { ...json, ...bearer(TEST_API_TOKEN) }, body: invalid });
      expect(r.status, r.text).toBe(400);
    }
    const limited = await send(url, {
      method: "POST",
      from: GREEDY_CLIENT,
      headers: { ...json, ...bearer(TEST_API_TOKEN) },
      body: invalid,
    });
    expect(limited.status).toBe(429);
    expect(limited.json.error).toBe("rate_limited");
    // The dispatcher names the client Caddy saw, so it did not count Caddy's own 127.0.0.1.
    expect(limited.json.message).toContain(`from ${GREEDY_CLIENT} `);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);

    // Caddy replaces a client's X-Forwarded-For (no trusted_proxies in the example): no escape.
    const forged = await send(url, {
      method: "POST",
      from: GREEDY_CLIENT,
      headers: { ...json, ...bearer(TEST_API_TOKEN), "x-forwarded-for": "198.51.100.7" },
      body: invalid,
    });
    expect(forged.status).toBe(429);
    expect(forged.json.message).toContain(`from ${GREEDY_CLIENT} `);

    // Another client is counted on its own.
    const other = await send(url, { method: "POST", from: OUTSIDE_CLIENT, headers: { ...json, ...bearer(TEST_API_TOKEN) }, body: invalid });
    expect(other.status).toBe(400);
  });

  it("a signed webhook through Caddy makes the autoscaler look now; a bad signature is refused with 401", async () => {
    // Settled: the webhook is registered at Forgejo with Caddy's URL, the first pass is done, and
    // the next timed look is an hour away, so only a delivery can start a pass.
    const settled = await waitFor(
      async () => {
        const r = await autoscalerStatus();
        const inst = r.json?.instances?.[0];
        const next = inst?.next_poll_at ? Date.parse(inst.next_poll_at as string) : 0;
        return r.status === 200 && inst.webhook.setup === "ok" && inst.last_success_at && next - Date.now() > 30 * 60_000
          ? inst
          : undefined;
      },
      { timeoutMs: DEADLINE_MS, intervalMs: 100, what: `the autoscaler settled with its webhook set up\n${logs()}` },
    );
    expect(settled.webhook.last_delivery_at).toBeNull();
    const hook = await waitFor(
      () =>
        forgejo.state.hooks.find(
          (h: FakeHook) => new URL(h.url).origin + new URL(h.url).pathname === `${caddy.autoscalerUrl}/webhook/${INSTANCE}`,
        ),
      {
        timeoutMs: DEADLINE_MS,
        what: "the hook the autoscaler created at Forgejo",
      },
    );
    expect(hook.secret).toBe(TEST_WEBHOOK_SECRET);
    // The autoscaler marks the hook URL with a fragment (never sent) to notice a changed secret.
    expect(new URL(hook.url).hash).toMatch(/^#forgejo-nsc-secret=/);
    expect(hook.events).toContain("action_run_success");

    const job = forgejo.addJob({ repo: `${REPO.owner}/${REPO.name}`, runs_on: [MEDIUM], name: "after-webhook" });
    const payload = forgejo.payloads.actionRun(firstJob.runId, "success");

    const forged = await forgejo.deliver(hook.url, "action_run_success", payload, { secret: "not-the-webhook-secret-0000" });
    expect(forged.error).toBeUndefined();
    expect(forged.status).toBe(401);
    const unsigned = await forgejo.deliver(hook.url, "action_run_success", payload, {});
    expect(unsigned.status).toBe(401);
    const afterBad = (await autoscalerStatus()).json.instances[0];
    expect(afterBad.webhook.last_delivery_at).toBeNull();
    expect(afterBad.last_poll_at).toBe(settled.last_poll_at);
    const none = await send(`${caddy.dispatcherUrl}/api/v1/runners?job=${job.id}`, { headers: bearer(TEST_API_TOKEN) });
    expect(none.json.runners).toEqual([]);

    // The hook as Forgejo sends it: its URL (Caddy), its secret, its content type.
    const good = await forgejo.deliver(hook, "action_run_success", payload);
    expect(good.status).toBe(202);

    const runner = await waitFor(
      async () => {
        const r = await send(`${caddy.dispatcherUrl}/api/v1/runners?job=${job.id}`, { headers: bearer(TEST_API_TOKEN) });
        return r.json?.runners?.[0];
      },
      { timeoutMs: DEADLINE_MS, intervalMs: 100, what: `a runner for job ${job.id} after the webhook\n${logs()}` },
    );
    expect(runner.labels).toEqual([MEDIUM]);
    const after = (await autoscalerStatus()).json.instances[0];
    expect(after.webhook.last_delivery_event).toBe("action_run_success");
    expect(Date.parse(after.last_poll_at as string)).toBeGreaterThan(Date.parse(settled.last_poll_at as string));

    await waitFor(
      async () =>
        (await send(`${caddy.dispatcherUrl}/api/v1/runners/${runner.name}`, { headers: bearer(TEST_API_TOKEN) })).json?.state === "done",
      { timeoutMs: DEADLINE_MS, intervalMs: 100, what: `runner ${runner.name} done\n${logs()}` },
    );
    expect(forgejo.job(job.id)?.status).toBe("success");

    // The autoscaler saw the deliveries from Forgejo's address (trust_proxy), and logged no signature.
    const rejected = autoscaler.jsonLines().filter((l) => l.msg === "webhook delivery rejected: bad signature");
    expect(rejected.map((l) => l.reason)).toEqual(["mismatch", "missing"]);
    const incoming = autoscaler
      .jsonLines()
      .filter((l) => l.msg === "incoming request" && (l.req as { url?: string }).url === `/webhook/${INSTANCE}`);
    expect(incoming.length).toBe(3);
  });

  it("serves /metrics only to the private network, and answers 404 for paths the example does not route", async () => {
    for (const [site, metric] of [
      [caddy.dispatcherUrl, "forgejo_nsc_dispatch_requests_total"],
      [caddy.autoscalerUrl, "forgejo_nsc_webhook_deliveries_total"],
    ] as const) {
      const inside = await send(`${site}/metrics`, { from: PRIVATE_CLIENT });
      expect(inside.status).toBe(200);
      expect(inside.text).toContain(metric);
      const outside = await send(`${site}/metrics`, { from: OUTSIDE_CLIENT });
      expect(outside.status).toBe(403);
      expect(outside.text).not.toContain("forgejo_nsc_");
      expect((await send(`${site}/healthz`, { from: OUTSIDE_CLIENT })).status).toBe(200);
      const unrouted = await send(`${site}/debug/pprof`, { from: OUTSIDE_CLIENT });
      expect(unrouted.status).toBe(404);
      expect(unrouted.text).toBe("not found");
    }
    const d = (await send(`${caddy.dispatcherUrl}/metrics`)).text;
    expect(d).toMatch(/forgejo_nsc_dispatch_requests_total\{outcome="accepted"\} [1-9]/);
    expect(d).toMatch(/forgejo_nsc_dispatch_requests_total\{outcome="invalid"\} [1-9]/);
    const a = (await send(`${caddy.autoscalerUrl}/metrics`)).text;
    expect(a).toMatch(new RegExp(`forgejo_nsc_webhook_deliveries_total\\{forge="${INSTANCE}",result="bad_signature"\\} 2`));
    expect(a).toMatch(new RegExp(`forgejo_nsc_webhook_deliveries_total\\{forge="${INSTANCE}",result="accepted"\\} 1`));
    // The autoscaler's status API is behind its own token, through Caddy too.
    expect((await send(`${caddy.autoscalerUrl}/api/v1/status`, { from: OUTSIDE_CLIENT })).status).toBe(401);
  });

  it("passes every dispatch body the dispatcher accepts and refuses larger ones", async () => {
    const url = `${caddy.dispatcherUrl}/api/v1/dispatch`;
    const headers = { ...json, ...bearer(TEST_API_TOKEN) };
    const sized = (bytes: number) => {
      const base = JSON.stringify({ count: 0, labels: [SMALL], env: { PADDING: "" } });
      return JSON.stringify({ count: 0, labels: [SMALL], env: { PADDING: "x".repeat(bytes - base.length) } });
    };
    // Just under the dispatcher's 65536 bytes: Caddy's limit is the same 64KiB (it once said 64KB,
    // 64000 bytes, and cut such a body off), so it reaches the dispatcher, which validates it.
    const under = await send(url, { method: "POST", from: OUTSIDE_CLIENT, headers, body: sized(65_400) });
    expect(under.status, under.text).toBe(400);
    expect(under.headers["x-request-id"]).toBeDefined();
    // Over both: refused, by Caddy (which cuts the upload off: 413, or 502 on Caddy 2.6) or by the
    // dispatcher from Content-Length.
    const over = await send(url, { method: "POST", from: OUTSIDE_CLIENT, headers, body: sized(70_000) });
    expect([413, 502]).toContain(over.status);
  });

  it("no secret reaches the output of Caddy or either daemon", async () => {
    const secrets = [
      TEST_API_TOKEN,
      TEST_API_TOKEN_NEXT,
      TEST_STATUS_TOKEN,
      TEST_WEBHOOK_SECRET,
      FAKE_ADMIN_TOKEN,
      ...forgejo.state.runners.map((r) => r.token),
      ...forgejo.state.registrationTokens.map((t) => t.token),
    ].filter((s): s is string => typeof s === "string" && s.length >= 8);
    // Not vacuous: the runners registered over REST, so their tokens existed and were handed out.
    expect(forgejo.state.runners.filter((r) => r.token).length).toBeGreaterThanOrEqual(2);
    for (const p of procs) {
      const text = `${p.stdout()}\n${p.stderr()}`;
      expect(text.length, `${p.name} wrote nothing`).toBeGreaterThan(0);
      expect(
        secrets.filter((s) => text.includes(s)),
        `secrets in the output of ${p.name}`,
      ).toEqual([]);
    }
    // Caddy's access log has the requests, with the bearer token redacted by Caddy itself.
    const access = caddy.process
      .jsonLines()
      .filter((l) => l.logger === "http.log.access.log0" || String(l.logger).startsWith("http.log.access"));
    const dispatched = access.filter((l) => (l.request as { uri?: string } | undefined)?.uri === "/api/v1/dispatch");
    expect(dispatched.length).toBeGreaterThan(0);
    const authHeaders = dispatched
      .map((l) => (l.request as { headers?: Record<string, string[]> }).headers?.Authorization)
      .filter((h) => h !== undefined);
    expect(authHeaders.length).toBeGreaterThan(0);
    // Caddy 2.6 logs the header with its values removed, later releases as ["REDACTED"].
    for (const h of authHeaders) expect(h.every((v) => v === "REDACTED")).toBe(true);
    // The example's filter drops every signature header Forgejo sends from the access log.
    const hooks = access.filter((l) => String((l.request as { uri?: string } | undefined)?.uri).startsWith("/webhook/"));
    expect(hooks.length).toBe(3);
    const signed = hooks.filter((l) => "X-Forgejo-Delivery" in (l.request as { headers: Record<string, unknown> }).headers);
    expect(signed.length).toBe(3);
    for (const l of signed) {
      const headers = (l.request as { headers: Record<string, unknown> }).headers;
      expect(Object.keys(headers).filter((k) => /signature/i.test(k))).toEqual([]);
    }
  });
});
