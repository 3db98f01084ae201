import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { API_TOKEN, startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    forgejo: {
      repos: [
        { owner: "acme", name: "app" },
        { owner: "evil", name: "x" },
      ],
    },
    simulate: false,
    yaml: `namespace:\n  allow_labels: ["namespace-profile-*", "self-hosted"]\n  allow_scopes: ["repo:acme/*", "instance"]\n  max_runners: 50\ndispatcher:\n  max_queue: 6\n`,
  });
});
afterAll(async () => {
  await h?.close();
});

const body = (extra: Record<string, unknown> = {}) => ({
  labels: ["namespace-profile-linux-small"],
  scope: { level: "repository", owner: "acme", name: "app" },
  ...extra,
});

describe("POST /api/v1/dispatch: authentication and validation", () => {
  it("needs the bearer token", async () => {
    const none = await h.request("POST", "/api/v1/dispatch", body(), { authorization: "" });
    expect(none.status).toBe(401);
    expect(none.body.message).toMatch(/missing bearer token/);
    const wrong = await h.request("POST", "/api/v1/dispatch", body(), { authorization: "Bearer not-the-token-at-all" });
    expect(wrong.status).toBe(401);
    expect(JSON.stringify(wrong.body)).not.toContain(API_TOKEN);
    expect(h.nsc.calls("run")).toHaveLength(0);
  });

  it("lists every bad field with its path", async () => {
    const r = await h.request("POST", "/api/v1/dispatch", { count: 0, ttl: "later", labels: [], surprise: true, env: { "bad-key": "v" } });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_request");
    const problems: string[] = r.body.details.problems;
    for (const key of ["count:", "ttl:", "labels:", "env.bad-key:"]) expect(problems.some((p) => p.startsWith(key))).toBe(true);
    expect(problems.some((p) => p.includes("surprise"))).toBe(true);
  });

  it("rejects malformed JSON, a wrong content type and an oversized body", async () => {
    const bad = await h.request("POST", "/api/v1/dispatch", "{not json");
    expect(bad.status).toBe(400);
    const text = await h.request("POST", "/api/v1/dispatch", "count=1", { "content-type": "text/plain" });
    expect(text.status).toBe(415);
    const huge = await h.request("POST", "/api/v1/dispatch", { ...body(), env: { BIG: "x".repeat(70_000) } });
    expect(huge.status).toBe(413);
    expect(huge.body.message).toMatch(/larger than the limit of 65536 bytes/);
  });

  it("answers 403 naming a label or scope outside the allow lists", async () => {
    const label = await h.request("POST", "/api/v1/dispatch", body({ labels: ["namespace-profile-linux-small", "gpu-monster"] }));
    expect(label.status).toBe(403);
    expect(label.body.message).toBe('label "gpu-monster" not allowed by namespace.allow_labels');
    const scope = await h.request("POST", "/api/v1/dispatch", body({ scope: { level: "repository", owner: "evil", name: "x" } }));
    expect(scope.status).toBe(403);
    expect(scope.body.message).toContain('scope "repo:evil/x"');
  });

  it("rejects a bad Idempotency-Key", async () => {
    const r = await h.request("POST", "/api/v1/dispatch", body(), { "idempotency-key": "has space" });
    expect(r.status).toBe(400);
  });
});

describe("idempotency", () => {
  it("returns the first dispatch for a repeated key and 409 for a different body", async () => {
    const first = await h.request("POST", "/api/v1/dispatch", body(), { "idempotency-key": "k-1" });
    expect(first.status).toBe(202);
    const again = await h.request("POST", "/api/v1/dispatch", body(), { "idempotency-key": "k-1" });
    expect(again.status).toBe(200);
    expect(again.body.dispatch_id).toBe(first.body.dispatch_id);
    expect(again.body.runners.map((r: { name: string }) => r.name)).toEqual(first.body.runners.map((r: { name: string }) => r.name));
    const other = await h.request("POST", "/api/v1/dispatch", body({ ttl: "5m" }), { "idempotency-key": "k-1" });
    expect(other.status).toBe(409);
    expect(other.body.message).toContain("k-1");
  });

  it("200 concurrent identical requests for one job create exactly one runner", async () => {
    const job = h.forgejo.addJob({ repo: "acme/app", runs_on: ["namespace-profile-linux-small"] });
    const req = body({ job: { id: job.id, attempt: 0, handle: job.handle } });
    const results = await Promise.all(Array.from({ length: 200 }, () => h.request("POST", "/api/v1/dispatch", req)));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(199);
    expect(new Set(results.map((r) => r.body.dispatch_id)).size).toBe(1);
    const runners = await h.request("GET", `/api/v1/runners?job=${job.id}`);
    expect(runners.body.runners).toHaveLength(1);
  });
});

describe("status and cancel", () => {
  it("lists runners by state, labels, scope and job, and explains one with its history", async () => {
    const r = await h.request("POST", "/api/v1/dispatch", body({ labels: ["self-hosted"], env: { SECRET_THING: "hunter2-value" } }));
    const name = r.body.runners[0].name;
    const list = await h.request("GET", "/api/v1/runners?labels=self-hosted&scope=repo:acme/app");
    expect(list.body.runners.map((x: { name: string }) => x.name)).toContain(name);
    const one = await h.request("GET", `/api/v1/runners/${name}`);
    expect(one.body.history[0]).toMatchObject({ from: null, to: "pending" });
    expect(one.body.env_keys).toEqual(["SECRET_THING"]);
    expect(JSON.stringify(one.body)).not.toContain("hunter2-value");
    const bad = await h.request("GET", "/api/v1/runners?state=sleeping");
    expect(bad.status).toBe(400);
    const missing = await h.request("GET", "/api/v1/runners/nope");
    expect(missing.status).toBe(404);
    const d = await h.request("GET", `/api/v1/dispatches/${r.body.dispatch_id}`);
    expect(d.body.runners[0].name).toBe(name);
  });

  it("cancels a running runner: instance destroyed, registration deleted, reason recorded", async () => {
    const r = await h.request("POST", "/api/v1/dispatch", body());
    const name = r.body.runners[0].name;
    const running = await waitFor(
      async () => {
        const x = await h.store.getRunner(name);
        return x?.state === "running" ? x : undefined;
      },
      { what: "running" },
    );
    const del = await h.request("DELETE", `/api/v1/runners/${name}?reason=wrong%20branch`);
    expect(del.status).toBe(200);
    expect(del.body.state).toBe("failed");
    expect(del.body.reason).toBe("cancelled through the API (wrong branch)");
    expect(h.nsc.instances().some((i) => i.id === running.instanceId)).toBe(false);
    expect(h.forgejo.runner(running.forgejoRunnerId!)?.deleted).toBe(true);
  });
});

describe("queueing", () => {
  it("answers 429 with Retry-After when the queue is full", async () => {
    // max_queue is 6: make runners wait by filling the global cap through a cap of zero.
    const caps = h.config.dispatcher.caps as { labels?: string[]; max: number }[];
    caps.push({ labels: ["namespace-profile-blocked"], max: 0 });
    const blocked = body({ labels: ["namespace-profile-blocked"], count: 4 });
    const a = await h.request("POST", "/api/v1/dispatch", blocked);
    expect(a.status).toBe(202);
    await waitFor(
      async () => {
        const x = await h.store.getRunner(a.body.runners[0].name);
        return x?.reason.startsWith("waiting for capacity") ? x : undefined;
      },
      { what: "capacity reason" },
    );
    const pending = await h.store.countRunners(["pending"]);
    const b = await h.request("POST", "/api/v1/dispatch", body({ labels: ["namespace-profile-blocked"], count: 7 - pending }));
    expect(b.status).toBe(429);
    expect(Number(b.headers.get("retry-after"))).toBeGreaterThan(0);
    const status = await h.request("GET", `/api/v1/runners/${a.body.runners[0].name}`);
    expect(status.body.reason).toBe("waiting for capacity: cap labels [namespace-profile-blocked] max=0 reached");
    caps.pop();
  });
});
