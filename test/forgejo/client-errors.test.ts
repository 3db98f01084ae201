import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { ForgejoClient } from "../../src/forgejo/client.js";
import { ForgejoApiError, formatDuration, isTransientForgejoError } from "../../src/forgejo/errors.js";
import { Metrics } from "../../src/http/metrics.js";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import { ACME, fakeForgejoPerTest } from "../helpers/fake-forgejo-per-test.js";
import { captureLogger } from "../helpers/log-capture.js";
import { INSTANCE, ORG, REPO, USER, clientFor, rejection } from "./helpers.js";

const READ_ORG_PAT = "readorg0000000000000000000000000000000001";
const PLAIN_USER_PAT = "plainuser000000000000000000000000000000002";
const NO_USER_SCOPE_PAT = "repoonly00000000000000000000000000000003";

const { start } = fakeForgejoPerTest({
  ...ACME,
  users: [
    { login: "admin", isAdmin: true },
    { login: "dev", isAdmin: false },
  ],
  tokens: {
    [FAKE_ADMIN_TOKEN]: { user: "admin", scopes: ["all"] },
    [READ_ORG_PAT]: { user: "admin", scopes: ["read:organization"] },
    [PLAIN_USER_PAT]: { user: "dev", scopes: ["all"] },
    [NO_USER_SCOPE_PAT]: { user: "admin", scopes: ["write:repository"] },
  },
});

/** Everything an error could leak through: message, stack, cause chain, own fields. */
function everything(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  while (e instanceof Error) {
    parts.push(e.message, e.stack ?? "", JSON.stringify(e), String(e));
    e = e.cause;
  }
  return parts.join("\n");
}

describe("ForgejoApiError messages", () => {
  it("401: names scope, operation, status and what to fix, without the rejected token", async () => {
    const f = await start();
    const wrong = "wrongpat0123456789wrongpat0123456789abcd";
    const { client, log } = clientFor(f, { token: wrong });
    const err = (await rejection(client.registrationToken(ORG))) as ForgejoApiError;
    expect(err).toBeInstanceOf(ForgejoApiError);
    expect(err).toMatchObject({ status: 401, kind: "http", operation: "registration_token", scope: ORG, isTransient: false });
    expect(err.message).toBe(
      'could not get the runner registration token for org:acme (GET /api/v1/orgs/acme/actions/runners/registration-token): HTTP 401 "token is required"; the token was rejected: check forgejo.token (it may be mistyped, expired or revoked)',
    );
    expect(everything(err)).not.toContain(wrong);
    expect(log.text()).not.toContain(wrong);
  });

  it("403 for a missing token scope names the scope the PAT needs", async () => {
    const f = await start();
    const { client } = clientFor(f, { token: READ_ORG_PAT });
    // Reading works with read:organization…
    expect(await client.registrationToken(ORG)).toBe(f.registrationToken({ level: "organization", owner: "acme" }));
    // …registering needs write:organization.
    const err = (await rejection(client.registerRunner(ORG, { name: "x", ephemeral: true }))) as ForgejoApiError;
    expect(err.status).toBe(403);
    expect(err.serverMessage).toBe("token does not have at least one of required scope(s): [write:organization]");
    expect(err.message).toContain("for org:acme");
    expect(err.message).toContain("the token lacks the write:organization scope (or its user is not an owner of organization acme)");
    const inst = (await rejection(client.registrationToken(INSTANCE))) as ForgejoApiError;
    expect(inst.message).toContain("the token lacks the read:admin scope (or its user is not a site administrator)");
  });

  it("403 for a user who is not a site admin", async () => {
    const f = await start();
    const { client } = clientFor(f, { token: PLAIN_USER_PAT });
    const err = (await rejection(client.searchJobs(INSTANCE))) as ForgejoApiError;
    expect(err.status).toBe(403);
    expect(err.message).toContain('"user should be the site admin"');
    expect(err.message).toContain("a site administrator");
    const repo = (await rejection(client.registrationToken(REPO))) as ForgejoApiError;
    expect(repo.message).toContain("the owner of repository acme/app or a site administrator");
  });

  it("404 on repository Actions routes: missing repository or Actions disabled", async () => {
    const f = await start();
    const { client } = clientFor(f);
    const missing = (await rejection(client.registrationToken({ level: "repository", owner: "acme", name: "nope" }))) as ForgejoApiError;
    expect(missing.status).toBe(404);
    expect(missing.message).toContain("repo:acme/nope");
    expect(missing.message).toContain("does not exist or has Actions disabled");
    f.setActionsEnabled("acme/app", false);
    const disabled = (await rejection(client.searchJobs(REPO, ["linux"]))) as ForgejoApiError;
    expect(disabled.status).toBe(404);
    expect(disabled.message).toContain("the repository acme/app does not exist or has Actions disabled");
  });

  it("5xx and 429 are transient, 4xx are not", async () => {
    const f = await start();
    const { client } = clientFor(f);
    f.failNext("/runners/registration-token", 500);
    const e500 = (await rejection(client.registrationToken(INSTANCE))) as ForgejoApiError;
    expect(e500.status).toBe(500);
    expect(e500.isTransient).toBe(true);
    expect(isTransientForgejoError(e500)).toBe(true);
    expect(e500.message).toContain("HTTP 500");
    f.failNext("/runners/registration-token", 429);
    expect(((await rejection(client.registrationToken(INSTANCE))) as ForgejoApiError).isTransient).toBe(true);
    f.failNext("/runners/registration-token", 400);
    expect(isTransientForgejoError(await rejection(client.registrationToken(INSTANCE)))).toBe(false);
    expect(isTransientForgejoError(new Error("other"))).toBe(false);
    // And the next call goes through again.
    expect(await client.registrationToken(INSTANCE)).toBeTruthy();
  });

  it("a timeout says how long it waited and is transient", async () => {
    const f = await start();
    const { client } = clientFor(f, { timeoutMs: 150 });
    f.delay(2000, "/registration-token");
    const started = Date.now();
    const err = (await rejection(client.registrationToken(REPO))) as ForgejoApiError;
    expect(Date.now() - started).toBeLessThan(1500);
    expect(err.kind).toBe("timeout");
    expect(err.status).toBe(0);
    expect(err.isTransient).toBe(true);
    expect(err.message).toContain("Forgejo did not answer within 150ms");
    expect(err.message).toContain("repo:acme/app");
    f.delay(0, "/registration-token");
    expect(await client.registrationToken(REPO)).toBeTruthy();
  });

  it("a refused connection is a transient network error naming the host, not the credentials", async () => {
    // A port that was just free: nothing listens there.
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const log = captureLogger();
    const client = new ForgejoClient({
      baseUrl: `http://ci:hunter2pw@127.0.0.1:${port}/`,
      token: FAKE_ADMIN_TOKEN,
      timeoutMs: 2000,
      logger: log.logger,
    });
    const err = (await rejection(client.serverInfo())) as ForgejoApiError;
    expect(err.kind).toBe("network");
    expect(err.isTransient).toBe(true);
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain("ECONNREFUSED");
    expect(everything(err)).not.toContain("hunter2pw");
    expect(everything(err)).not.toContain(FAKE_ADMIN_TOKEN);
    expect(log.text()).not.toContain("hunter2pw");
  });

  it("an answer that is not the documented shape is a bad_response naming the field", async () => {
    const f = await start();
    const { client } = clientFor(f);
    f.failNext("/registration-token", 200, 1, { body: { tokn: "x" } });
    const err = (await rejection(client.registrationToken(INSTANCE))) as ForgejoApiError;
    expect(err.kind).toBe("bad_response");
    expect(err.message).toContain("token:");
    f.failNext("/version", 200, 1, { body: { version: "not a version" } });
    const v = (await rejection(client.serverInfo())) as ForgejoApiError;
    expect(v.kind).toBe("bad_response");
    expect(v.message).toContain("forgejo.base_url");
  });

  it("/user needs read:user: a repository-only token gets a 403 naming it", async () => {
    const f = await start();
    const { client } = clientFor(f, { token: NO_USER_SCOPE_PAT });
    const err = (await rejection(client.currentUser())) as ForgejoApiError;
    expect(err.status).toBe(403);
    expect(err.message).toContain("read:user");
    expect(await clientFor(f).client.currentUser()).toEqual({ id: 1, login: "admin", isAdmin: true });
    const userScoped = (await rejection(clientFor(f, { token: NO_USER_SCOPE_PAT }).client.searchJobs(USER))) as ForgejoApiError;
    expect(userScoped.message).toContain("read:user");
  });
});

describe("the PAT stays secret", () => {
  it("never appears in errors (even when the server echoes it), logs or metrics", async () => {
    const f = await start();
    const { client, log, metrics } = clientFor(f);
    f.failNext("/registration-token", 400, 1, { body: { message: `bad request with token ${FAKE_ADMIN_TOKEN} in it` } });
    const echoed = (await rejection(client.registrationToken(INSTANCE))) as ForgejoApiError;
    expect(echoed.message).toContain("bad request with token [redacted] in it");
    const errors: unknown[] = [echoed];
    f.failNext("/hooks", 500, 1, { body: `plain text ${FAKE_ADMIN_TOKEN}` });
    errors.push(await rejection(client.listHooks(REPO)));
    f.delay(1000);
    errors.push(
      await rejection(new ForgejoClient({ baseUrl: f.url, token: FAKE_ADMIN_TOKEN, timeoutMs: 50, logger: log.logger }).serverInfo()),
    );
    f.delay(0);
    await client.serverInfo();
    await client.registerRunner(REPO, { name: "r", ephemeral: true });
    for (const e of errors) expect(everything(e)).not.toContain(FAKE_ADMIN_TOKEN);
    expect(log.lines.length).toBeGreaterThan(3);
    expect(log.text()).not.toContain(FAKE_ADMIN_TOKEN);
    expect(await metrics.registry.metrics()).not.toContain(FAKE_ADMIN_TOKEN);
    // It did travel where it belongs.
    expect(f.calls.every((c) => c.auth.token === FAKE_ADMIN_TOKEN)).toBe(true);
  });
});

describe("metrics and logs", () => {
  it("counts every call by endpoint family and status (0 = no response)", async () => {
    const f = await start();
    const metrics = new Metrics({ defaultMetrics: false });
    const { client } = clientFor(f, { metrics });
    await client.serverInfo();
    await client.registrationToken(INSTANCE);
    await client.searchJobs(REPO);
    await client.listHooks(REPO);
    await client.getRunner(REPO, 999);
    f.delay(500);
    await rejection(
      new ForgejoClient({
        baseUrl: f.url,
        token: FAKE_ADMIN_TOKEN,
        timeoutMs: 30,
        logger: captureLogger().logger,
        metrics,
      }).registrationToken(INSTANCE),
    );
    const text = await metrics.registry.metrics();
    expect(text).toContain('forgejo_nsc_forgejo_calls_total{endpoint="version",status="200"} 1');
    expect(text).toContain('forgejo_nsc_forgejo_calls_total{endpoint="registration_token",status="200"} 1');
    expect(text).toContain('forgejo_nsc_forgejo_calls_total{endpoint="jobs",status="200"} 1');
    expect(text).toContain('forgejo_nsc_forgejo_calls_total{endpoint="hooks",status="200"} 1');
    expect(text).toContain('forgejo_nsc_forgejo_calls_total{endpoint="runners",status="404"} 1');
    expect(text).toContain('forgejo_nsc_forgejo_calls_total{endpoint="registration_token",status="0"} 1');
  });

  it("keeps a sub-path of the base URL and logs each call at debug without headers", async () => {
    const f = await start();
    const { client, log } = clientFor(f, { baseUrl: `${f.url}/forgejo/` });
    await rejection(client.serverInfo());
    expect(f.calls[0]!.path).toBe("/forgejo/api/v1/version");
    const line = JSON.parse(log.lines.find((l) => l.includes("forgejo call"))!) as { forgejo: Record<string, unknown>; level: number };
    expect(line.forgejo).toMatchObject({ op: "server_version", method: "GET", path: "/api/v1/version", status: 404 });
    expect(line.level).toBe(20);
  });

  it("formats durations the way the config writes them", () => {
    expect([formatDuration(150), formatDuration(30_000), formatDuration(1500), formatDuration(90_000), formatDuration(120_000)]).toEqual([
      "150ms",
      "30s",
      "1.5s",
      "1m30s",
      "2m",
    ]);
  });
});
