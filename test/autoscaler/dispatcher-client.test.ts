import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Actor } from "../../src/autoscaler/act.js";
import { DispatcherClient, DispatcherUnavailableError } from "../../src/autoscaler/dispatcher-client.js";
import { runnerListSchema } from "../../src/autoscaler/dispatcher-types.js";
import type { DispatchBody } from "../../src/autoscaler/dispatcher-types.js";
import { Metrics } from "../../src/http/metrics.js";
import { startFakeDispatcher } from "../fakes/dispatcher/index.js";
import type { FakeDispatcher } from "../fakes/dispatcher/index.js";
import { captureLogger } from "../helpers/log-capture.js";

const TOKEN = "client-test-token-0123456789abcdef";
let fake: FakeDispatcher;
let client: DispatcherClient;
const metrics = new Metrics({ defaultMetrics: false });
const body: DispatchBody = { count: 1, labels: ["linux"], scope: { level: "repository", owner: "acme", name: "app" }, ttl: "20m0s" };

beforeAll(async () => {
  fake = await startFakeDispatcher({ token: TOKEN, allowLabels: ["linux"], maxQueue: 3 });
  client = new DispatcherClient({ url: `${fake.url}/`, timeoutMs: 2000, token: TOKEN, metrics });
});
afterAll(async () => {
  await fake.close();
});

describe("DispatcherClient against the dispatcher contract", () => {
  it("202 created, 200 for the same key and body, 409 for the same key and another body", async () => {
    const a = await client.dispatch(body, "k-1");
    expect(a).toMatchObject({ kind: "created", response: { dispatch_id: "d1", runners: [{ name: "fake-runner-1-0", state: "pending" }] } });
    const b = await client.dispatch({ ...body }, "k-1");
    expect(b).toMatchObject({ kind: "duplicate", response: { dispatch_id: "d1" } });
    const c = await client.dispatch({ ...body, ttl: "30m0s" }, "k-1");
    expect(c).toMatchObject({ kind: "rejected", status: 409 });
    expect((c as { message: string }).message).toMatch(/used before with a different request; the target's settings changed since/);
    expect(fake.dispatches).toHaveLength(1);
    expect(fake.requests.slice(-3).map((r) => [r.idempotencyKey, r.auth])).toEqual([
      ["k-1", "ok"],
      ["k-1", "ok"],
      ["k-1", "ok"],
    ]);
  });

  it("400 and 403 are refusals that name the problem", async () => {
    const invalid = await client.dispatch({ ...body, job: { id: 1 }, count: 2 }, "k-2");
    expect(invalid).toMatchObject({ kind: "rejected", status: 400 });
    expect((invalid as { message: string }).message).toContain("count: must be 1 when a job is named");
    const forbidden = await client.dispatch({ ...body, labels: ["gpu"] }, "k-3");
    expect(forbidden).toMatchObject({ kind: "rejected", status: 403 });
    expect((forbidden as { message: string }).message).toContain("namespace.allow_labels / allow_scopes");
  });

  it("429 (queue full) and 5xx are worth retrying; Retry-After is kept", async () => {
    fake.failNext("/api/v1/dispatch", 429, 1, { retryAfter: 7 });
    expect(await client.dispatch(body, "k-4")).toMatchObject({ kind: "unavailable", status: 429, retryAfterMs: 7000 });
    fake.failNext("/api/v1/dispatch", 502, 1);
    expect(await client.dispatch(body, "k-4")).toMatchObject({ kind: "unavailable", status: 502 });
  });

  it("401 says which keys to set; the token never appears in a message", async () => {
    const wrong = new DispatcherClient({ url: fake.url, timeoutMs: 2000, token: "not-the-right-token-0123456789" });
    const r = await wrong.dispatch(body, "k-5");
    expect(r).toMatchObject({ kind: "rejected", status: 401 });
    expect((r as { message: string }).message).toContain("set dispatcher.token or dispatcher.token_file");
    const err = await wrong.listRunners({ states: ["pending"] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DispatcherUnavailableError);
    expect((err as Error).message).toContain("dispatcher.token");
    for (const m of [JSON.stringify(r), (err as Error).message]) {
      expect(m).not.toContain("not-the-right-token-0123456789");
      expect(m).not.toContain(TOKEN);
    }
  });

  it("lists runners by state and scope", async () => {
    const runners = await client.listRunners({ states: ["pending", "running"], scopeKey: "repo:acme/app" });
    expect(runners.map((r) => r.name)).toContain("fake-runner-1-0");
    expect(runners.every((r) => r.scope_key === "repo:acme/app")).toBe(true);
    expect(await client.listRunners({ states: ["pending"], scopeKey: "org:other" })).toEqual([]);
    const q = fake.requests.at(-1)!.query;
    expect(q).toEqual({ state: "pending", scope: "org:other", limit: "5000" });
  });

  it("an unreachable dispatcher is 'unavailable' with what to check", async () => {
    const gone = new DispatcherClient({ url: "http://127.0.0.1:9", timeoutMs: 1000, token: TOKEN });
    const r = await gone.dispatch(body, "k-6");
    expect(r).toMatchObject({ kind: "unavailable", status: 0 });
    expect((r as { message: string }).message).toMatch(
      /^cannot reach the dispatcher at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\); check dispatcher\.url/,
    );
  });
});

describe("Actor", () => {
  it("one request at a time per key: concurrent asks share it", async () => {
    const logs = captureLogger();
    const actor = new Actor({ instance: "x", client, logger: logs.logger, now: () => new Date(), bodyFor: () => body });
    fake.setOnDispatch(undefined);
    const before = fake.posts().length;
    const [a, b] = await Promise.all([actor.post("shared-key", body), actor.post("shared-key", body)]);
    expect(a).toBe(b);
    expect(fake.posts().length - before).toBe(1);
  });
});

describe("the runner list the autoscaler reads", () => {
  it("survives a record whose scope no longer validates (accepted before names were checked)", () => {
    const parsed = runnerListSchema.parse({
      runners: [
        { name: "old", state: "running", scope: { level: "repository", owner: "..", name: "admin" }, scope_key: "repo:../admin" },
        { name: "new", state: "pending", scope: { level: "repository", owner: "acme", name: "app" }, scope_key: "repo:acme/app" },
      ],
    });
    expect(parsed.runners.map((r) => [r.name, r.scope_key, r.scope])).toEqual([
      ["old", "repo:../admin", undefined],
      ["new", "repo:acme/app", { level: "repository", owner: "acme", name: "app" }],
    ]);
  });
});
