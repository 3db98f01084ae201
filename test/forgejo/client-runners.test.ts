import { describe, expect, it } from "vitest";
import { ForgejoApiError } from "../../src/forgejo/errors.js";
import type { Scope } from "../../src/forgejo/scope.js";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import type { FakeScope } from "../fakes/forgejo/index.js";
import { fakeForgejoPerTest } from "../helpers/fake-forgejo-per-test.js";
import { ALL_SCOPES, INSTANCE, ORG, REPO, clientFor, rejection } from "./helpers.js";

const { start } = fakeForgejoPerTest();

/** The fake's name for a client scope (the user scope is the token's user). */
function fakeScope(s: Scope): FakeScope {
  switch (s.level) {
    case "instance":
      return { level: "instance" };
    case "organization":
      return { level: "organization", owner: s.owner! };
    case "repository":
      return { level: "repository", owner: s.owner!, name: s.name! };
    case "user":
      return { level: "user", owner: "admin" };
  }
}

const TOKEN_PATHS: Record<string, string> = {
  instance: "/api/v1/admin/runners/registration-token",
  organization: "/api/v1/orgs/acme/actions/runners/registration-token",
  repository: "/api/v1/repos/acme/app/actions/runners/registration-token",
  user: "/api/v1/user/actions/runners/registration-token",
};

describe("registration tokens", () => {
  it.each(ALL_SCOPES)("GETs the stable token at %s scope with the PAT in the Authorization header only", async (name, scope) => {
    const f = await start({ version: "15.0.3" });
    const { client } = clientFor(f, { extraHeaders: { "X-Proxy-Key": "proxy", Authorization: "Bearer not-this" } });
    const first = await client.registrationToken(scope);
    expect(first).toBe(f.registrationToken(fakeScope(scope)));
    expect(await client.registrationToken(scope)).toBe(first);
    const calls = f.callsTo("registration-token");
    expect(calls.map((c) => [c.method, c.path])).toEqual([
      ["GET", TOKEN_PATHS[name]],
      ["GET", TOKEN_PATHS[name]],
    ]);
    const c = calls[0]!;
    expect(c.auth).toEqual({ present: true, scheme: "token", token: FAKE_ADMIN_TOKEN, user: "admin" });
    expect(c.headers.accept).toBe("application/json");
    expect(c.headers["x-proxy-key"]).toBe("proxy");
    expect(JSON.stringify(c.query)).not.toContain(FAKE_ADMIN_TOKEN);
  });

  it("uses /admin/runners/registration-token on Forgejo 11 and falls back to the v15 admin path when it is gone", async () => {
    const f = await start({ version: "11.0.0" });
    const { client } = clientFor(f);
    expect(await client.registrationToken(INSTANCE)).toBe(f.registrationToken({ level: "instance" }));
    f.setVersion("16.0.0");
    f.failNext("/api/v1/admin/runners/registration-token", 404);
    f.clearCalls();
    expect(await client.registrationToken(INSTANCE)).toBe(f.registrationToken({ level: "instance" }));
    expect(f.calls.map((c) => `${c.status} ${c.path}`)).toEqual([
      "404 /api/v1/admin/runners/registration-token",
      "200 /api/v1/admin/actions/runners/registration-token",
    ]);
  });

  it("on Gitea uses GET, which keeps the token other runners are still registering with", async () => {
    const f = await start({ kind: "gitea" });
    const { client } = clientFor(f);
    const a = await client.registrationToken(REPO);
    const b = await client.registrationToken(REPO);
    expect(a).toBe(b);
    expect(f.callsTo("registration-token", "POST")).toHaveLength(0);
    // A registration with the first token still works.
    expect(() => f.connectRunner({ registrationToken: a, labels: ["linux"] })).not.toThrow();
  });

  it("on a Gitea answering 405 to GET mints one with POST", async () => {
    const f = await start({ kind: "gitea" });
    const { client } = clientFor(f);
    const before = f.registrationToken({ level: "organization", owner: "acme" });
    f.failNext("/api/v1/orgs/acme/actions/runners/registration-token", 405, 1, { method: "GET" });
    const minted = await client.registrationToken(ORG);
    expect(minted).not.toBe(before);
    expect(f.calls.map((c) => `${c.method} ${c.status}`)).toEqual(["GET 405", "POST 200"]);
  });
});

describe("ephemeral runners (Forgejo 15)", () => {
  it.each(ALL_SCOPES)("registers, reads, and deletes at %s scope", async (_name, scope) => {
    const f = await start({ version: "15.0.3" });
    const { client } = clientFor(f);
    const reg = await client.registerRunner(scope, { name: "nscloud-a1", description: "forgejo-nsc test", ephemeral: true });
    expect(reg.token).toMatch(/^[0-9a-f]{40}$/);
    expect(reg.uuid).toMatch(/^[0-9a-f-]{36}$/);
    const post = f.callsTo("/actions/runners", "POST")[0]!;
    expect(post.body).toEqual({ name: "nscloud-a1", description: "forgejo-nsc test", ephemeral: true });

    expect(await client.getRunner(scope, reg.id)).toEqual({
      id: reg.id,
      uuid: reg.uuid,
      name: "nscloud-a1",
      status: "offline",
      labels: [],
      ephemeral: true,
    });
    expect((await client.listRunners(scope)).map((r) => r.id)).toEqual([reg.id]);

    expect(await client.deleteRunner(scope, reg.id)).toBe(true);
    expect(await client.getRunner(scope, reg.id)).toBeUndefined();
    expect(await client.deleteRunner(scope, reg.id)).toBe(false);
    expect(f.callsTo(`/actions/runners/${reg.id}`, "DELETE").map((c) => c.status)).toEqual([204, 404]);
  });

  it("follows the runner through connect, job and ephemeral deletion", async () => {
    const f = await start({ version: "15.0.3" });
    const { client } = clientFor(f);
    const job = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const reg = await client.registerRunner(REPO, { name: "r", ephemeral: true });
    const { job: taken } = f.connectRunner({ uuid: reg.uuid, token: reg.token, labels: ["linux"], handle: job.handle });
    expect(taken?.id).toBe(job.id);
    expect((await client.getRunner(REPO, reg.id))?.status).toBe("active");
    f.finishJob(job.id, "success");
    expect(await client.getRunner(REPO, reg.id)).toBeUndefined();
  });

  it("pages through runner lists with limit=50 until X-Total-Count", async () => {
    const f = await start({ version: "15.0.3" });
    const { client } = clientFor(f);
    for (let i = 0; i < 120; i++) f.world.registerRunner({ level: "instance" }, { name: `r${i}`, ephemeral: true, via: "rest" });
    const list = await client.listRunners(INSTANCE);
    expect(list).toHaveLength(120);
    expect(new Set(list.map((r) => r.id)).size).toBe(120);
    expect(f.callsTo("/admin/actions/runners").map((c) => c.query)).toEqual([
      { page: "1", limit: "50" },
      { page: "2", limit: "50" },
      { page: "3", limit: "50" },
    ]);
  });

  it("refuses REST registration without a call once it knows the server is older than 15", async () => {
    const f = await start({ version: "14.0.0" });
    const { client } = clientFor(f);
    await client.serverInfo();
    f.clearCalls();
    const err = await rejection(client.registerRunner(REPO, { name: "x", ephemeral: true }));
    expect(err).toBeInstanceOf(ForgejoApiError);
    expect((err as ForgejoApiError).kind).toBe("unsupported");
    expect(err.message).toMatch(/Forgejo 14\.0\.0 cannot register runners over REST.*Forgejo 15.*forgejo\.registration/);
    expect(f.calls).toHaveLength(0);
  });

  it("explains a 404 from an unknown server version", async () => {
    const f = await start({ version: "14.0.0" });
    const { client } = clientFor(f);
    const err = (await rejection(client.registerRunner(ORG, { name: "x", ephemeral: true }))) as ForgejoApiError;
    expect(err.status).toBe(404);
    expect(err.message).toContain("org:acme");
    expect(err.message).toContain("older than Forgejo 15");
  });
});

describe("Gitea runners", () => {
  it("maps {runners,total_count} with online/busy to Forgejo's offline/idle/active", async () => {
    const f = await start({ kind: "gitea", version: "1.24.0" });
    const { client } = clientFor(f);
    const regToken = f.registrationToken({ level: "instance" });
    const idle = f.connectRunner({ registrationToken: regToken, name: "idle", labels: ["ubuntu-latest", "gpu"] }).runner;
    const busy = f.connectRunner({ registrationToken: regToken, name: "busy", labels: ["linux"], ephemeral: true }).runner;
    f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    f.fetchTask(busy.uuid);
    const off = f.connectRunner({ registrationToken: regToken, name: "off", labels: ["x"] }).runner;
    f.disconnectRunner(off.uuid);

    const list = await client.listRunners(INSTANCE);
    const byName = Object.fromEntries(list.map((r) => [r.name, r]));
    expect(byName.idle).toEqual({
      id: idle.id,
      name: "idle",
      status: "idle",
      labels: ["ubuntu-latest", "gpu"],
      busy: false,
      ephemeral: false,
    });
    expect(byName.busy).toMatchObject({ status: "active", busy: true, ephemeral: true, labels: ["linux"] });
    expect(byName.off).toMatchObject({ status: "offline", busy: false });
    expect(await client.getRunner(INSTANCE, busy.id)).toMatchObject({ name: "busy", status: "active", busy: true });
    expect(await client.deleteRunner(INSTANCE, off.id)).toBe(true);
    expect(await client.getRunner(INSTANCE, off.id)).toBeUndefined();
  });

  it("pages Gitea runner lists by total_count", async () => {
    const f = await start({ kind: "gitea" });
    const { client } = clientFor(f);
    for (let i = 0; i < 61; i++)
      f.world.registerRunner({ level: "instance" }, { name: `g${i}`, ephemeral: false, via: "registration_token" });
    expect(await client.listRunners(INSTANCE)).toHaveLength(61);
    expect(f.callsTo("/admin/actions/runners")).toHaveLength(2);
  });

  it("has no REST registration on Gitea: a clear error once the kind is known", async () => {
    const f = await start({ kind: "gitea" });
    const { client } = clientFor(f);
    await client.serverInfo();
    const err = await rejection(client.registerRunner(REPO, { name: "x", ephemeral: true }));
    expect(err.message).toMatch(/Gitea 1\.25\.0 cannot register runners over REST/);
  });
});
