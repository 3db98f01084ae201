import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FAKE_ADMIN_PASSWORD, FAKE_ADMIN_TOKEN, buildDelivery } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { ACME, fakeForgejoPerTest } from "../helpers/fake-forgejo-per-test.js";
import { waitFor } from "../helpers/wait.js";
import { startReceiver } from "./receiver.js";

/** Tests of the fake's own contract behaviour (contracts/forgejo-api.md), over raw HTTP. */

const { start, own } = fakeForgejoPerTest({
  ...ACME,
  users: [
    { login: "admin", password: FAKE_ADMIN_PASSWORD, isAdmin: true },
    { login: "dev", password: "dev-pw" },
  ],
});

async function api(f: FakeForgejo, method: string, path: string, opts: { auth?: string | null; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  const auth = opts.auth === undefined ? `token ${FAKE_ADMIN_TOKEN}` : opts.auth;
  if (auth !== null) headers.authorization = auth;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${f.url}/api/v1${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? (JSON.parse(text) as unknown) : undefined, headers: res.headers };
}

const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`;

describe("authentication (§1)", () => {
  it("accepts token/bearer in any case, Basic with the token as user, and ?token=", async () => {
    const f = await start({ tokens: { [FAKE_ADMIN_TOKEN]: ["read:admin"] } });
    for (const auth of [
      `token ${FAKE_ADMIN_TOKEN}`,
      `Bearer ${FAKE_ADMIN_TOKEN}`,
      `TOKEN ${FAKE_ADMIN_TOKEN}`,
      basic(FAKE_ADMIN_TOKEN, ""),
      basic(FAKE_ADMIN_TOKEN, "x-oauth-basic"),
    ]) {
      expect((await api(f, "GET", "/admin/runners/registration-token", { auth })).status).toBe(200);
    }
    expect((await api(f, "GET", `/admin/runners/registration-token?token=${FAKE_ADMIN_TOKEN}`, { auth: null })).status).toBe(200);
    expect((await api(f, "GET", `/admin/runners/registration-token?access_token=${FAKE_ADMIN_TOKEN}`, { auth: null })).status).toBe(200);
    expect(f.calls.map((c) => c.auth.scheme)).toEqual(["token", "bearer", "token", "basic", "basic", "query", "query"]);
    expect(f.calls.every((c) => c.headers.authorization === undefined)).toBe(true);
  });

  it("401 without credentials or with an unknown token; three fields is not a token header", async () => {
    const f = await start();
    for (const auth of [null, "token nope", `token ${FAKE_ADMIN_TOKEN} extra`]) {
      const r = await api(f, "GET", "/admin/runners/registration-token", { auth });
      expect(r.status).toBe(401);
      expect(r.json).toMatchObject({ message: "token is required" });
    }
    expect((await api(f, "GET", "/version", { auth: null })).status).toBe(200);
  });

  it("403 with Forgejo's exact message for a missing scope; write implies read; method picks the level", async () => {
    const f = await start({ tokens: { t1: ["write:repository"], t2: ["read:repository"] } });
    expect((await api(f, "GET", "/repos/acme/app/actions/runners", { auth: "token t1" })).status).toBe(200);
    const denied = await api(f, "POST", "/repos/acme/app/actions/runners", { auth: "token t2", body: { name: "x" } });
    expect(denied.status).toBe(403);
    expect(denied.json).toEqual({
      message: "token does not have at least one of required scope(s): [write:repository]",
      url: `${f.url}/api/swagger`,
    });
    expect((await api(f, "GET", "/orgs/acme/hooks", { auth: "token t1" })).json).toMatchObject({
      message: "token does not have at least one of required scope(s): [read:organization]",
    });
    expect((await api(f, "GET", "/user", { auth: "token t1" })).status).toBe(403);
  });

  it("role checks: site admin for /admin, org owner for /orgs, repo owner for runners, repo admin for hooks", async () => {
    const f = await start({ tokens: { dev: { user: "dev", scopes: ["all"] } }, repos: [{ owner: "acme", name: "app", admins: ["dev"] }] });
    const dev = { auth: "token dev" };
    expect((await api(f, "GET", "/admin/hooks", dev)).json).toMatchObject({ message: "user should be the site admin" });
    expect((await api(f, "GET", "/orgs/acme/actions/runners/registration-token", dev)).json).toMatchObject({
      message: "Must be an organization owner",
    });
    expect((await api(f, "GET", "/repos/acme/app/actions/runners/registration-token", dev)).status).toBe(403);
    expect((await api(f, "GET", "/repos/acme/app/hooks", dev)).status).toBe(200);
    expect((await api(f, "GET", "/user/actions/runners/registration-token", dev)).status).toBe(200);
    expect((await api(f, "GET", "/repos/acme/missing/hooks", dev)).status).toBe(404);
  });
});

describe("routes by version (§0)", () => {
  it("Forgejo 10: no jobs API, no runners API", async () => {
    const f = await start({ version: "10.0.0" });
    expect((await api(f, "GET", "/version")).json).toEqual({ version: "10.0.0+gitea-1.22.0" });
    expect((await api(f, "GET", "/admin/runners/jobs")).status).toBe(404);
    expect((await api(f, "GET", "/repos/acme/app/actions/runners/jobs?labels=a")).status).toBe(404);
    expect((await api(f, "GET", "/repos/acme/app/actions/runners/registration-token")).status).toBe(200);
  });

  it("Forgejo 11: jobs at /admin/runners/jobs only, and nothing without labels", async () => {
    const f = await start({ version: "11.0.0" });
    f.addJob({ repo: "acme/app", runs_on: ["a"] });
    expect((await api(f, "GET", "/admin/actions/runners/jobs")).status).toBe(404);
    expect((await api(f, "GET", "/admin/runners/jobs")).text).toBe("null");
    expect((await api(f, "GET", "/admin/runners/jobs?labels=")).text).toBe("null");
    expect((await api(f, "GET", "/admin/runners/jobs?labels=a")).json).toMatchObject([{ runs_on: ["a"], status: "waiting" }]);
    expect((await api(f, "GET", "/admin/runners/jobs?labels=a")).json).not.toMatchObject([{ handle: expect.any(String) }]);
    expect((await api(f, "GET", "/repos/acme/app/actions/runners")).status).toBe(404);
  });

  it("Forgejo 14: labels optional; `labels=` means jobs without labels", async () => {
    const f = await start({ version: "14.0.0" });
    const a = f.addJob({ repo: "acme/app", runs_on: ["a"] });
    const none = f.addJob({ repo: "acme/app", runs_on: [] });
    expect(((await api(f, "GET", "/admin/runners/jobs")).json as { id: number }[]).map((j) => j.id)).toEqual([none.id, a.id]);
    expect(((await api(f, "GET", "/admin/runners/jobs?labels=")).json as { id: number }[]).map((j) => j.id)).toEqual([none.id]);
    expect((await api(f, "POST", "/repos/acme/app/actions/runners", { body: { name: "x" } })).status).toBe(404);
  });

  it("Forgejo 15: runner API, new admin paths, attempt/handle; POST registration-token is 405", async () => {
    const f = await start({ version: "15.0.3" });
    f.addJob({ repo: "acme/app", runs_on: ["a"] });
    expect((await api(f, "GET", "/admin/actions/runners/jobs")).json).toMatchObject([{ attempt: 0, handle: expect.any(String) }]);
    expect((await api(f, "GET", "/admin/actions/runners/registration-token")).status).toBe(200);
    expect((await api(f, "POST", "/repos/acme/app/actions/runners/registration-token")).status).toBe(405);
    expect((await api(f, "POST", "/repos/acme/app/actions/runners", { body: {} })).status).toBe(422);
    const jobs = (await api(f, "GET", "/admin/actions/runners/jobs")).json as Record<string, unknown>[];
    expect(jobs[0]!.run_id).toBeUndefined();
    f.setVersion("16.0.0");
    expect(((await api(f, "GET", "/admin/actions/runners/jobs")).json as Record<string, unknown>[])[0]!.run_id).toEqual(expect.any(Number));
  });

  it("Gitea 1.25: {runners,total_count}, {jobs,total_count}, POST registration-token rotates, no REST registration", async () => {
    const f = await start({ kind: "gitea" });
    expect((await api(f, "GET", "/version")).json).toEqual({ version: "1.25.0" });
    const t1 = (await api(f, "GET", "/repos/acme/app/actions/runners/registration-token")).json as { token: string };
    const t2 = (await api(f, "POST", "/repos/acme/app/actions/runners/registration-token")).json as { token: string };
    expect(t2.token).not.toBe(t1.token);
    expect(() => f.connectRunner({ registrationToken: t1.token, labels: ["x"] })).toThrow(/rotated/);
    f.connectRunner({ registrationToken: t2.token, labels: ["x"], name: "g" });
    expect((await api(f, "GET", "/repos/acme/app/actions/runners")).json).toEqual({
      runners: [{ id: 1, name: "g", status: "online", busy: false, ephemeral: false, labels: [{ id: 0, name: "x", type: "custom" }] }],
      total_count: 1,
    });
    f.addJob({ repo: "acme/app", runs_on: ["y"] });
    const jobs = (await api(f, "GET", "/repos/acme/app/actions/jobs?status=queued")).json as {
      jobs: Record<string, unknown>[];
      total_count: number;
    };
    expect(jobs.total_count).toBe(1);
    expect(jobs.jobs[0]).toMatchObject({ labels: ["y"], status: "queued", run_attempt: 0 });
    expect((await api(f, "GET", "/repos/acme/app/actions/jobs?status=bogus")).status).toBe(400);
    expect((await api(f, "POST", "/repos/acme/app/actions/runners", { body: { name: "x" } })).status).toBe(405);
    expect((await api(f, "GET", "/repos/acme/app/actions/runners/jobs")).status).toBe(404);
  });
});

describe("runner simulation", () => {
  it("a handle pins the runner to that job; an ephemeral runner takes one job and is deleted when it ends", async () => {
    const f = await start({ version: "15.0.3" });
    const first = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const second = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const reg = (await api(f, "POST", "/repos/acme/app/actions/runners", { body: { name: "eph", ephemeral: true } })).json as {
      id: number;
      uuid: string;
      token: string;
    };
    expect(() => f.connectRunner({ uuid: reg.uuid, token: "0".repeat(40), labels: ["linux"] })).toThrow(/unauthenticated/);
    const { job } = f.connectRunner({ uuid: reg.uuid, token: reg.token, labels: ["linux"], handle: second.handle });
    expect(job?.id).toBe(second.id);
    expect(f.job(second.id)).toMatchObject({ status: "running", attempt: 1 });
    expect((await api(f, "GET", `/repos/acme/app/actions/runners/${reg.id}`)).json).toMatchObject({
      status: "active",
      labels: ["linux"],
      ephemeral: true,
    });
    f.finishJob(second.id, "success");
    expect((await api(f, "GET", `/repos/acme/app/actions/runners/${reg.id}`)).status).toBe(404);
    expect(() => f.fetchTask(reg.uuid)).toThrow(/no runner/);
    expect(f.job(first.id)!.status).toBe("waiting");
  });

  it("matches labels (every runs_on label among the runner's) and scope (repo runner only gets its repo's jobs)", async () => {
    const f = await start({ version: "15.0.3" });
    const other = f.addJob({ repo: "other/repo", runs_on: ["linux"] });
    const gpu = f.addJob({ repo: "acme/app", runs_on: ["linux", "gpu"] });
    const repoToken = f.registrationToken({ level: "repository", owner: "acme", name: "app" });
    expect(f.connectRunner({ registrationToken: repoToken, labels: ["linux"] }).job).toBeUndefined();
    expect(f.connectRunner({ registrationToken: repoToken, labels: ["linux", "gpu", "big"] }).job?.id).toBe(gpu.id);
    expect(f.connectRunner({ registrationToken: repoToken, labels: ["linux"] }).job).toBeUndefined();
    expect(f.connectRunner({ registrationToken: f.registrationToken({ level: "instance" }), labels: ["linux"] }).job?.id).toBe(other.id);
  });

  it("a persistent runner goes back to idle and takes the next job on its next poll", async () => {
    const f = await start({ version: "15.0.3" });
    const a = f.addJob({ repo: "acme/app", runs_on: ["l"] });
    const { runner } = f.connectRunner({ registrationToken: f.registrationToken({ level: "instance" }), labels: ["l"] });
    expect(runner.currentJobId).toBe(a.id);
    const b = f.addJob({ repo: "acme/app", runs_on: ["l"] });
    expect(f.fetchTask(runner.uuid)).toBeUndefined();
    f.finishJob(a.id);
    expect(f.runner(runner.id)).toMatchObject({ busy: false, deleted: false });
    expect(f.fetchTask(runner.uuid)?.id).toBe(b.id);
  });

  it("paginates runner lists with X-Total-Count and Link; visible=true adds global runners", async () => {
    const f = await start({ version: "15.0.3" });
    for (let i = 0; i < 35; i++) await api(f, "POST", "/repos/acme/app/actions/runners", { body: { name: `r${i}` } });
    await api(f, "POST", "/admin/actions/runners", { body: { name: "global" } });
    const page1 = await api(f, "GET", "/repos/acme/app/actions/runners");
    expect((page1.json as unknown[]).length).toBe(30);
    expect(page1.headers.get("x-total-count")).toBe("35");
    expect(page1.headers.get("link")).toContain('rel="next"');
    expect(((await api(f, "GET", "/repos/acme/app/actions/runners?page=2&limit=30")).json as unknown[]).length).toBe(5);
    for (let i = 0; i < 20; i++) await api(f, "POST", "/repos/acme/app/actions/runners", { body: { name: `more${i}` } });
    expect(((await api(f, "GET", "/repos/acme/app/actions/runners?limit=500")).json as unknown[]).length).toBe(50);
    expect((await api(f, "GET", "/repos/acme/app/actions/runners?visible=true&limit=50")).headers.get("x-total-count")).toBe("56");
    expect((await api(f, "GET", "/admin/actions/runners")).headers.get("x-total-count")).toBe("1");
    // Deleting the global runner through the repo path: visible but not owned → 404.
    const global = f.state.runners.find((r) => r.name === "global")!;
    expect((await api(f, "DELETE", `/repos/acme/app/actions/runners/${global.id}`)).status).toBe(404);
    expect((await api(f, "DELETE", `/admin/actions/runners/${global.id}`)).status).toBe(204);
  });
});

describe("hooks (§6 quirks)", () => {
  it("create: active defaults to false, events to push, unknown events dropped, url and content_type required", async () => {
    const f = await start();
    const h = (
      await api(f, "POST", "/repos/acme/app/hooks", {
        body: { type: "forgejo", config: { url: "http://127.0.0.1:1/x", content_type: "json" }, events: ["nonsense"] },
      })
    ).json;
    expect(h).toMatchObject({
      active: false,
      events: ["push"],
      url: "http://127.0.0.1:1/x",
      content_type: "json",
      config: { url: "http://127.0.0.1:1/x", content_type: "json" },
    });
    expect(JSON.stringify(h)).not.toContain("secret");
    expect(
      (await api(f, "POST", "/repos/acme/app/hooks", { body: { type: "forgejo", config: { content_type: "json" } } })).json,
    ).toMatchObject({ message: "Missing config option: url" });
    expect((await api(f, "POST", "/repos/acme/app/hooks", { body: { type: "forgejo", config: { url: "http://x/" } } })).json).toMatchObject(
      { message: "Missing config option: content_type" },
    );
    expect(
      (await api(f, "POST", "/repos/acme/app/hooks", { body: { type: "nope", config: { url: "http://x/", content_type: "json" } } }))
        .status,
    ).toBe(422);
  });

  it("edit: secret ignored, omitted events reset to push, action_run_* and package untouched, omitted active unchanged", async () => {
    const f = await start();
    const created = (
      await api(f, "POST", "/orgs/acme/hooks", {
        body: {
          type: "forgejo",
          config: { url: "http://127.0.0.1:1/x", content_type: "json", secret: "one" },
          events: ["push", "action_run_failure"],
          active: true,
        },
      })
    ).json as { id: number };
    const edited = (
      await api(f, "PATCH", `/orgs/acme/hooks/${created.id}`, {
        body: { config: { secret: "two" }, events: ["release", "action_run_success"] },
      })
    ).json;
    expect(edited).toMatchObject({ events: ["release", "action_run_failure"], active: true });
    expect(f.state.hooks[0]!.secret).toBe("one");
    const reset = (await api(f, "PATCH", `/orgs/acme/hooks/${created.id}`, { body: { active: false } })).json;
    expect(reset).toMatchObject({ events: ["push", "action_run_failure"], active: false });
    expect((await api(f, "DELETE", `/orgs/acme/hooks/${created.id}`)).status).toBe(204);
    expect((await api(f, "DELETE", `/orgs/acme/hooks/${created.id}`)).status).toBe(404);
  });

  it("admin hooks: is_system_webhook makes a system hook; GET /admin/hooks lists only those", async () => {
    const f = await start();
    const body = (sys: string) => ({
      type: "forgejo",
      config: { url: "http://127.0.0.1:1/x", content_type: "json", is_system_webhook: sys },
      active: true,
    });
    await api(f, "POST", "/admin/hooks", { body: body("true") });
    await api(f, "POST", "/admin/hooks", { body: body("false") });
    const list = await api(f, "GET", "/admin/hooks");
    expect((list.json as unknown[]).length).toBe(1);
    expect(list.headers.get("x-total-count")).toBe("1");
  });
});

describe("webhook delivery (§7.2)", () => {
  it("Forgejo headers, pretty JSON body and signatures over the JSON bytes", () => {
    const { headers, body, json } = buildDelivery("forgejo", "action_run_success", { a: 1, b: [1] }, { secret: "k" });
    expect(body).toBe('{\n  "a": 1,\n  "b": [\n    1\n  ]\n}');
    const sha256 = createHmac("sha256", "k").update(json).digest("hex");
    expect(headers).toMatchObject({
      "X-Forgejo-Event": "action_run_success",
      "X-Forgejo-Event-Type": "action_run_success",
      "X-Gitea-Event": "action_run_success",
      "X-GitHub-Event": "action_run_success",
      "X-Forgejo-Signature": sha256,
      "X-Gitea-Signature": sha256,
      "X-Gogs-Signature": sha256,
      "X-Hub-Signature-256": `sha256=${sha256}`,
      "X-Hub-Signature": `sha1=${createHmac("sha1", "k").update(json).digest("hex")}`,
      "Content-Type": "application/json",
    });
    expect(headers["X-Forgejo-Delivery"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(headers["X-Gitea-Hook-Installation-Target-Type"]).toBeUndefined();
  });

  it("Gitea: no X-Forgejo-*, adds the installation target type; no secret = empty signatures; form body signs the JSON", () => {
    const { headers, body, json } = buildDelivery(
      "gitea",
      "workflow_job",
      { x: "a b" },
      { contentType: "form", targetType: "organization" },
    );
    expect(Object.keys(headers).some((k) => k.startsWith("X-Forgejo"))).toBe(false);
    expect(headers["X-Gitea-Hook-Installation-Target-Type"]).toBe("organization");
    expect(headers["X-GitHub-Hook-Installation-Target-Type"]).toBe("organization");
    expect(headers["X-Gitea-Signature"]).toBe("");
    expect(headers["X-Hub-Signature-256"]).toBe("sha256=");
    expect(headers["Content-Type"]).toBe("application/x-www-form-urlencoded");
    expect(new URLSearchParams(body).get("payload")).toBe(json);
  });

  it("delivers action_run_failure and action_run_recover on their own, with the hook's authorization header", async () => {
    const f = await start({ version: "15.0.3" });
    const rx = own(await startReceiver());
    await api(f, "POST", "/repos/acme/app/hooks", {
      body: {
        type: "forgejo",
        config: { url: `${rx.url}/hook#frag`, content_type: "json", secret: "s" },
        events: ["action_run_failure", "action_run_recover", "action_run_success"],
        active: true,
        authorization_header: "Bearer receiver-token",
      },
    });
    const token = f.registrationToken({ level: "instance" });
    const j1 = f.addJob({ repo: "acme/app", runs_on: ["l"] });
    f.connectRunner({ registrationToken: token, labels: ["l"] });
    f.finishJob(j1.id, "failure");
    await waitFor(() => rx.received.length === 1);
    const j2 = f.addJob({ repo: "acme/app", runs_on: ["l"] });
    f.connectRunner({ registrationToken: token, labels: ["l"] });
    f.finishJob(j2.id, "success");
    await waitFor(() => rx.received.length === 3);
    await f.settled();
    const events = rx.received.map((r) => r.headers["x-forgejo-event"]).sort();
    expect(events).toEqual(["action_run_failure", "action_run_recover", "action_run_success"]);
    expect(rx.received.every((r) => r.url === "/hook" && r.headers.authorization === "Bearer receiver-token")).toBe(true);
    const recover = JSON.parse(rx.received.find((r) => r.headers["x-forgejo-event"] === "action_run_recover")!.body.toString()) as Record<
      string,
      unknown
    >;
    expect(recover).toMatchObject({ action: "recover", run: { id: j2.runId }, last_run: { id: j1.runId, status: "failure" } });
    expect(Object.keys(recover).sort()).toEqual(["action", "last_run", "prior_status", "run"]);
    expect(f.deliveries.map((d) => d.status)).toEqual([202, 202, 202]);
  });

  it("Gitea delivers workflow_job queued, in_progress and completed; inactive hooks stay silent", async () => {
    const f = await start({ kind: "gitea" });
    const rx = own(await startReceiver());
    const hook = { type: "gitea", config: { url: `${rx.url}/g`, content_type: "json", secret: "s" }, events: ["workflow_job"] };
    await api(f, "POST", "/repos/acme/app/hooks", { body: { ...hook, active: true } });
    await api(f, "POST", "/orgs/acme/hooks", { body: hook });
    const j = f.addJob({ repo: "acme/app", runs_on: ["u"] });
    f.connectRunner({ registrationToken: f.registrationToken({ level: "instance" }), labels: ["u"] });
    f.finishJob(j.id, "success");
    await waitFor(() => rx.received.length === 3);
    await f.settled();
    const actions = rx.received.map(
      (r) => JSON.parse(r.body.toString()) as { action: string; workflow_job: { status: string; conclusion?: string } },
    );
    expect(actions.map((a) => a.action).sort()).toEqual(["completed", "in_progress", "queued"]);
    expect(actions.find((a) => a.action === "completed")!.workflow_job).toMatchObject({ status: "completed", conclusion: "success" });
    expect(rx.received[0]!.headers["x-gitea-hook-installation-target-type"]).toBe("repository");
    expect(f.deliveries).toHaveLength(3);
  });

  it("deliver() sends an arbitrary payload as a stored hook would", async () => {
    const f = await start();
    const rx = own(await startReceiver(500));
    const h = (
      await api(f, "POST", "/user/hooks", {
        body: { type: "forgejo", config: { url: `${rx.url}/u`, content_type: "json", secret: "s" }, active: true },
      })
    ).json as { id: number };
    const d = await f.deliver(h.id, "push", { ref: "refs/heads/main" });
    expect(d.status).toBe(500);
    expect(rx.received[0]!.headers["x-forgejo-signature"]).toBe(createHmac("sha256", "s").update(rx.received[0]!.body).digest("hex"));
  });
});

describe("PAT minting and /user", () => {
  it("POST /users/{name}/tokens with Basic auth returns the AccessToken shape and a working token", async () => {
    const f = await start();
    const r = await api(f, "POST", "/users/admin/tokens", {
      auth: basic("admin", FAKE_ADMIN_PASSWORD),
      body: { name: "forgejo-nsc", scopes: ["write:admin", "write:repository"] },
    });
    expect(r.status).toBe(201);
    const t = r.json as { id: number; name: string; sha1: string; token_last_eight: string; scopes: string[] };
    expect(t).toMatchObject({ name: "forgejo-nsc", scopes: ["write:admin", "write:repository"] });
    expect(t.sha1).toMatch(/^[0-9a-f]{40}$/);
    expect(t.token_last_eight).toBe(t.sha1.slice(-8));
    expect((await api(f, "GET", "/admin/runners/registration-token", { auth: `token ${t.sha1}` })).status).toBe(200);
    expect((await api(f, "GET", "/user", { auth: `token ${t.sha1}` })).status).toBe(403);
    expect(
      (
        await api(f, "POST", "/users/admin/tokens", {
          auth: basic("admin", FAKE_ADMIN_PASSWORD),
          body: { name: "forgejo-nsc", scopes: ["all"] },
        })
      ).json,
    ).toMatchObject({
      message: "access token name has been used already",
    });
  });

  it("refuses a wrong password (401), token auth (401), another user's tokens (403), bad scopes (400)", async () => {
    const f = await start();
    const wrong = await api(f, "POST", "/users/admin/tokens", { auth: basic("admin", "nope"), body: { name: "a", scopes: ["all"] } });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toMatchObject({ message: expect.stringContaining("password is invalid") });
    expect((await api(f, "POST", "/users/admin/tokens", { body: { name: "a", scopes: ["all"] } })).status).toBe(401);
    expect(
      (await api(f, "POST", "/users/admin/tokens", { auth: basic("dev", "dev-pw"), body: { name: "a", scopes: ["all"] } })).status,
    ).toBe(403);
    expect(
      (
        await api(f, "POST", "/users/dev/tokens", {
          auth: basic("admin", FAKE_ADMIN_PASSWORD),
          body: { name: "for-dev", scopes: ["read:user"] },
        })
      ).status,
    ).toBe(201);
    expect(
      (await api(f, "POST", "/users/dev/tokens", { auth: basic("dev", "dev-pw"), body: { name: "b", scopes: ["write:everything"] } }))
        .status,
    ).toBe(400);
    expect((await api(f, "POST", "/users/dev/tokens", { auth: basic("dev", "dev-pw"), body: { name: "b", scopes: [] } })).status).toBe(400);
    expect((await api(f, "POST", "/users/dev/tokens", { auth: basic("dev", "dev-pw"), body: { scopes: ["all"] } })).status).toBe(422);
  });

  it("GET /user returns the token's user with is_admin", async () => {
    const f = await start({ tokens: { d: { user: "dev", scopes: ["read:user"] } } });
    expect((await api(f, "GET", "/user", { auth: "token d" })).json).toMatchObject({ login: "dev", is_admin: false });
  });
});

describe("knobs", () => {
  it("failNext answers the next matching calls with a status, then behaves again; every call is recorded", async () => {
    const f = await start();
    f.failNext("/registration-token", 503, 2, { method: "GET" });
    expect((await api(f, "GET", "/admin/runners/registration-token")).status).toBe(503);
    expect((await api(f, "GET", "/version")).status).toBe(200);
    expect((await api(f, "GET", "/admin/runners/registration-token")).status).toBe(503);
    expect((await api(f, "GET", "/admin/runners/registration-token")).status).toBe(200);
    expect(f.calls.map((c) => c.status)).toEqual([503, 200, 503, 200]);
  });
});

describe("takeJob", () => {
  it("puts exactly that job in running through a simulated runner; finishJob completes it", async () => {
    const f = await start({ version: "15.0.3" });
    f.addJob({ repo: "acme/app", runs_on: ["l"] });
    const second = f.addJob({ repo: "acme/app", runs_on: ["l"] });
    const { runner, job } = f.takeJob(second.id);
    expect(job).toMatchObject({ id: second.id, status: "running", attempt: 1, runnerId: runner.id });
    expect(() => f.takeJob(second.id)).toThrow(/not waiting/);
    f.finishJob(second.id, "cancelled");
    expect(f.job(second.id)!.status).toBe("cancelled");
    expect(f.runner(runner.id)!.busy).toBe(false);
  });
});
