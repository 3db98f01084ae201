import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import type { DispatcherConfig } from "../../src/config/dispatcher-schema.js";
import { acceptDispatch, runnerName } from "../../src/dispatcher/accept.js";
import type { Accepted } from "../../src/dispatcher/accept.js";
import { Records } from "../../src/dispatcher/records.js";
import { dispatchRequestSchema } from "../../src/api/dispatch-request.js";
import { HttpError } from "../../src/http/errors.js";
import { Metrics } from "../../src/http/metrics.js";
import { platformForLabels } from "../../src/namespace/platform.js";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";
import { captureLogger } from "../helpers/log-capture.js";

/**
 * acceptDispatch against the real SQLite store (in memory): what is recorded, which key a request
 * gets, and when a repeated key is the same request (200) or a different one (409).
 */
const NOW = new Date("2026-03-01T10:00:00.000Z");
const REPO = { level: "repository", owner: "acme", name: "app" } as const;

let store: Store;
let config: DispatcherConfig;

function configWith(over: Record<string, unknown> = {}): DispatcherConfig {
  const { namespace, dispatcher, forgejo, runner } = over as Record<string, Record<string, unknown> | undefined>;
  return dispatcherConfigSchema.parse({
    forgejo: { base_url: "https://forgejo.example", token: "pat", ...forgejo },
    namespace: { machine_type: "4x8", image: "runner:img", duration: "30m", ...namespace },
    dispatcher: { queue_timeout: "1h", supervise_interval: "10s", ...dispatcher },
    runner: {
      name_prefix: "nscloud-",
      binaries: { windows_amd64: { url: "https://forgejo.example/forgejo-runner.exe", sha256: "0".repeat(64) } },
      ...runner,
    },
  });
}

beforeEach(async () => {
  store = await openStore(":memory:");
  config = configWith();
});
afterEach(async () => {
  await store.close();
});

function deps(cfg = config) {
  return {
    config: cfg,
    records: new Records(store, captureLogger().logger, new Metrics({ defaultMetrics: false }), () => NOW),
    platformFor: platformForLabels,
  };
}

/** Parses the body as the route does, so the request has the schema's defaults. */
function accept(body: Record<string, unknown>, key?: string, cfg = config): Promise<Accepted> {
  return acceptDispatch(deps(cfg), dispatchRequestSchema.parse(body), key);
}

async function refusal(p: Promise<unknown>): Promise<HttpError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HttpError);
  return err as HttpError;
}

const base = { labels: ["namespace-profile-linux-small"], scope: REPO, env: { A: "1", B: "2" } };

describe("a repeated idempotency key", () => {
  // Each body differs from `base` in exactly one way the dispatcher would launch differently.
  it.each([
    ["an env value", { env: { A: "1", B: "3" } }],
    ["an env key", { env: { A: "1", C: "2" } }],
    ["one env entry fewer", { env: { A: "1" } }],
    ["the labels", { labels: ["namespace-profile-linux-large"] }],
    ["one label more", { labels: ["namespace-profile-linux-small", "gpu"] }],
    ["the count", { count: 2 }],
    ["the TTL", { ttl: "45m" }],
    ["the machine type", { machine_type: "8x16" }],
    ["the image", { image: "other:img" }],
    ["the scope", { scope: { level: "repository", owner: "acme", name: "web" } }],
  ])("with a body that differs only in %s is a conflict (409) that names the key and the first dispatch", async (_what, change) => {
    const first = await accept(base, "k-1");
    expect(first.status).toBe(202);
    const err = await refusal(accept({ ...base, ...change }, "k-1"));
    expect(err.statusCode).toBe(409);
    expect(err.message).toBe(
      `idempotency key "k-1" was already used for a different request (dispatch ${first.dispatch.id}); use a new key`,
    );
    expect(err.details).toEqual({ dispatch_id: first.dispatch.id });
    expect(await store.countRunners(["pending"])).toBe(1);
  });

  it.each([
    ["another job", { job: { id: 8 } }, { job: { id: 9 } }],
    ["another attempt of the job", { job: { id: 8, attempt: 1 } }, { job: { id: 8, attempt: 2 } }],
    ["another handle of the job", { job: { id: 8, handle: "h-a" } }, { job: { id: 8, handle: "h-b" } }],
    ["a job where there was none", {}, { job: { id: 8 } }],
  ])("with %s under the same explicit key is a conflict", async (_what, a, b) => {
    await accept({ ...base, ...a }, "k-job");
    expect((await refusal(accept({ ...base, ...b }, "k-job"))).statusCode).toBe(409);
  });

  it("with the same body (env in another key order, defaults spelt out) returns the first dispatch and its runners (200)", async () => {
    const first = await accept({ ...base, count: 2 }, "k-2");
    await accept(base, "another-key");
    const again = await accept(
      {
        count: 2,
        env: { B: "2", A: "1" },
        scope: REPO,
        labels: ["namespace-profile-linux-small"],
        ttl: "30m",
        machine_type: "4x8",
        image: "runner:img",
      },
      "k-2",
    );
    expect(again.status).toBe(200);
    expect(again.dispatch.id).toBe(first.dispatch.id);
    expect(again.runners.map((r) => r.name).sort()).toEqual(first.runners.map((r) => r.name).sort());
    expect(await store.countRunners(["pending"])).toBe(3);
  });

  it("is settled by the store when two requests race past the lookup: one 202, the other 200 or 409", async () => {
    const [a, b] = await Promise.all([accept(base, "race"), accept(base, "race")]);
    expect([a.status, b.status].sort()).toEqual([200, 202]);
    expect(a.dispatch.id).toBe(b.dispatch.id);
    expect(b.runners.map((r) => r.name)).toEqual(a.runners.map((r) => r.name));

    const results = await Promise.allSettled([accept(base, "race2"), accept({ ...base, env: { A: "x", B: "2" } }, "race2")]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect((rejected.reason as HttpError).statusCode).toBe(409);
    expect(await store.countRunners(["pending"])).toBe(2);
  });
});

describe("the key a job implies", () => {
  it.each([
    [{ id: 5 }, "job:5:0"],
    [{ id: 5, attempt: 3 }, "job:5:3"],
    [{ id: 5, handle: "h-1" }, "job:5:h-1"],
    [{ id: 5, attempt: 3, handle: "h-1" }, "job:5:h-1"],
  ])("%o → %s", async (job, key) => {
    const r = await accept({ ...base, job });
    expect(r.dispatch.idempotencyKey).toBe(key);
    expect((await accept({ ...base, job })).status).toBe(200);
  });

  it("differs per attempt and per handle: a re-run of the job gets a runner of its own", async () => {
    const jobs = [
      { id: 5, attempt: 1 },
      { id: 5, attempt: 2 },
      { id: 5, handle: "h-1" },
      { id: 5, handle: "h-2" },
      { id: 6, attempt: 1 },
    ];
    const accepted = [];
    for (const job of jobs) accepted.push(await accept({ ...base, job }));
    expect(accepted.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
    expect(new Set(accepted.map((a) => a.dispatch.id)).size).toBe(jobs.length);
    expect(await store.countRunners(["pending"])).toBe(jobs.length);
  });

  it("gives way to an explicit Idempotency-Key", async () => {
    const r = await accept({ ...base, job: { id: 5, attempt: 1 } }, "explicit");
    expect(r.dispatch.idempotencyKey).toBe("explicit");
    expect(await store.getDispatchByKey("job:5:1")).toBeUndefined();
  });

  it("is absent without a job: the same body twice is two dispatches", async () => {
    const a = await accept(base);
    const b = await accept(base);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.dispatch.idempotencyKey).toBeUndefined();
    expect(a.dispatch.id).not.toBe(b.dispatch.id);
  });
});

describe("what an accepted dispatch records", () => {
  it("runners in pending with the request's values, the queue deadline, and env values only on the runners", async () => {
    const r = await accept({ ...base, count: 3, ttl: "45m", machine_type: "8x16", image: "custom:1", job: undefined });
    expect(r.status).toBe(202);
    expect(r.runners).toHaveLength(3);
    expect(r.dispatch.runnerNames).toEqual(r.runners.map((x) => x.name));
    expect(r.dispatch.createdAt).toBe(NOW.toISOString());
    expect(r.dispatch.request).toEqual({
      count: 3,
      labels: ["namespace-profile-linux-small"],
      scope: REPO,
      ttl_ms: 45 * 60_000,
      machine_type: "8x16",
      image: "custom:1",
      env: { A: "[redacted]", B: "[redacted]" },
      job: null,
    });
    expect(r.dispatch.requestHash).toMatch(/^[0-9a-f]{64}$/);
    for (const runner of r.runners) {
      expect(runner).toMatchObject({
        dispatchId: r.dispatch.id,
        state: "pending",
        reason: "accepted; waiting for a launch slot",
        platform: "linux",
        labels: ["namespace-profile-linux-small"],
        scope: REPO,
        machineType: "8x16",
        image: "custom:1",
        ttlMs: 45 * 60_000,
        env: { A: "1", B: "2" },
        launchAttempts: 0,
        createdAt: NOW.toISOString(),
        updatedAt: NOW.toISOString(),
        queueDeadline: new Date(NOW.getTime() + 3_600_000).toISOString(),
      });
      expect(runner.history).toEqual([{ at: NOW.toISOString(), from: null, to: "pending", reason: "accepted; waiting for a launch slot" }]);
      expect(runner.name).toMatch(/^nscloud-[a-z2-7]{10}$/);
      expect(await store.getRunner(runner.name)).toMatchObject({ state: "pending", env: { A: "1", B: "2" } });
    }
    expect(new Set(r.runners.map((x) => x.name)).size).toBe(3);
  });

  it("fills in the configured defaults: labels, scope, TTL, machine type and image", async () => {
    const cfg = configWith({
      forgejo: { default_labels: ["namespace-profile-windows-medium"], default_scope: { level: "organization", owner: "acme" } },
    });
    const r = await accept({}, undefined, cfg);
    expect(r.runners[0]).toMatchObject({
      labels: ["namespace-profile-windows-medium"],
      scope: { level: "organization", owner: "acme" },
      ttlMs: 30 * 60_000,
      platform: "windows",
      machineType: "4x8",
      image: "runner:img",
      env: {},
    });
    expect(r.runners[0]!.job).toBeUndefined();
    expect(r.dispatch.request).toMatchObject({ env: {}, job: null });
  });

  it("keeps the job on the runner", async () => {
    const r = await accept({ ...base, job: { id: 7, attempt: 2, handle: "h" } });
    expect(r.runners[0]!.job).toEqual({ id: 7, attempt: 2, handle: "h" });
    expect(r.dispatch.request).toMatchObject({ job: { id: 7, attempt: 2, handle: "h" } });
  });

  it("picks the platform and its machine type from the labels", async () => {
    const mac = await accept({ labels: ["namespace-profile-macos-large"] });
    expect(mac.runners[0]).toMatchObject({ platform: "macos", machineType: config.namespace.macos_machine_type });
  });
});

describe("what accept refuses", () => {
  it("names each label outside namespace.allow_labels (403), one or several", async () => {
    const cfg = configWith({ namespace: { allow_labels: ["namespace-profile-*"] } });
    const one = await refusal(accept({ labels: ["namespace-profile-linux-small", "gpu"] }, undefined, cfg));
    expect(one.statusCode).toBe(403);
    expect(one.message).toBe('label "gpu" not allowed by namespace.allow_labels');
    expect(one.details).toEqual({ labels: ["gpu"] });
    const two = await refusal(accept({ labels: ["gpu", "tpu"] }, undefined, cfg));
    expect(two.message).toBe('labels "gpu", "tpu" not allowed by namespace.allow_labels');
    expect(await store.countRunners(["pending"])).toBe(0);
  });

  it("refuses a scope outside namespace.allow_scopes (403)", async () => {
    const cfg = configWith({ namespace: { allow_scopes: ["repo:acme/*"] } });
    const err = await refusal(accept({ scope: { level: "organization", owner: "evil" } }, undefined, cfg));
    expect(err.statusCode).toBe(403);
    expect(err.message).toBe('scope "org:evil" not allowed by namespace.allow_scopes');
    expect(err.details).toEqual({ scope: "org:evil" });
    expect((await accept({ scope: REPO }, undefined, cfg)).status).toBe(202);
  });

  it("answers 400 for labels that ask for macOS and Windows at once", async () => {
    const labels = ["namespace-profile-macos-large", "namespace-profile-windows-large"];
    const err = await refusal(accept({ labels }));
    expect(err.statusCode).toBe(400);
    expect(err.message).toMatch(/ask for both macOS and Windows/);
    expect(err.details).toEqual({ labels });
  });

  it.each([
    ["namespace-profile-windows-large", "windows", {}, /no forgejo-runner for Windows/],
    ["namespace-profile-macos-large", "macos", { macos_build_from_source: false }, /no forgejo-runner for macOS/],
  ] as const)("answers 400 for %s when no forgejo-runner source serves %s", async (label, platform, runner, problem) => {
    const cfg = configWith({ runner: { binaries: {}, ...runner } });
    const err = await refusal(accept({ labels: ["self-hosted", label] }, undefined, cfg));
    expect(err.statusCode).toBe(400);
    expect(err.message).toMatch(new RegExp(`^labels "self-hosted", "${label}" run on ${platform}, which this dispatcher cannot serve: `));
    expect(err.message).toMatch(problem);
    expect(err.details).toEqual({ labels: ["self-hosted", label], platform });
    expect(await store.countRunners(["pending"])).toBe(0);
  });

  it("passes on an error of the platform choice that is not a conflict", async () => {
    const boom = new Error("boom");
    const d = {
      ...deps(),
      platformFor: () => {
        throw boom;
      },
    };
    await expect(acceptDispatch(d, dispatchRequestSchema.parse(base), undefined)).rejects.toBe(boom);
  });

  it("answers 429 with Retry-After once pending runners plus the request exceed dispatcher.max_queue", async () => {
    const cfg = configWith({ dispatcher: { max_queue: 3, supervise_interval: "20s" } });
    expect((await accept({ ...base, count: 2 }, undefined, cfg)).status).toBe(202);
    // 2 pending + 1 = 3: exactly at the limit is still accepted.
    expect((await accept(base, undefined, cfg)).status).toBe(202);
    const err = await refusal(accept(base, undefined, cfg));
    expect(err.statusCode).toBe(429);
    expect(err.message).toBe("the launch queue is full (3 runners pending, dispatcher.max_queue=3); retry later");
    expect(err.headers).toEqual({ "retry-after": "20" });
    // The wait is the supervision interval, at least 5 seconds.
    const short = configWith({ dispatcher: { max_queue: 3, supervise_interval: "2s" } });
    expect((await refusal(accept(base, undefined, short))).headers).toEqual({ "retry-after": "5" });
  });

  it("answers a replay even when the queue is full", async () => {
    const cfg = configWith({ dispatcher: { max_queue: 1 } });
    const first = await accept(base, "k", cfg);
    const again = await accept(base, "k", cfg);
    expect(again.status).toBe(200);
    expect(again.dispatch.id).toBe(first.dispatch.id);
  });
});

describe("runnerName", () => {
  it("is the prefix and ten base32 letters, different every time", () => {
    const names = Array.from({ length: 200 }, () => runnerName("p-"));
    for (const n of names) expect(n).toMatch(/^p-[a-z2-7]{10}$/);
    expect(new Set(names).size).toBe(200);
    // Every one of the 32 letters turns up: the alphabet is used in full.
    expect(new Set(names.flatMap((n) => [...n.slice(2)])).size).toBe(32);
  });
});
