import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAKE_ADMIN_TOKEN, buildDelivery } from "../fakes/forgejo/index.js";
import { waitFor } from "../helpers/wait.js";
import { DISPATCHER_TOKEN, STATUS_TOKEN, WEBHOOK_SECRET, instanceConfig, startStack } from "./harness.js";
import type { Stack } from "./harness.js";

let stack: Stack;
const bodies: string[] = [];

beforeAll(async () => {
  stack = await startStack({
    forgejo: { version: "15.0.3" },
    instances: (url) => [
      instanceConfig(url, { name: "fj", webhook_secret: WEBHOOK_SECRET, poll_interval: "1h" }),
      instanceConfig(url, { name: "open", poll_interval: "1h" }),
    ],
    top: { webhooks: { body_limit: 2048, debounce: "50ms" } },
  });
  await waitFor(() => stack.autoscaler.reconcilers.every((r) => r.passCount >= 1), { what: "first passes" });
});
afterAll(async () => {
  await stack.close();
});

async function post(
  path: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; json: Record<string, unknown>; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${stack.url}${path}`, { method: "POST", headers, body });
  const text = await res.text();
  bodies.push(text);
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {}, ms: performance.now() - started };
}

const sign = (body: string, secret = WEBHOOK_SECRET) => createHmac("sha256", secret).update(body).digest("hex");
const push = JSON.stringify({ ref: "refs/heads/main" }, null, 2);

async function deliveries(instance: string, result: string): Promise<number> {
  const m = await stack.metrics.webhookDeliveries.get();
  return m.values.find((v) => v.labels.forge === instance && v.labels.result === result)?.value ?? 0;
}

describe("POST /webhook/<name>", () => {
  it("unknown name → 404", async () => {
    const r = await post("/webhook/nope", push, {
      "content-type": "application/json",
      "x-forgejo-event": "push",
      "x-forgejo-signature": sign(push),
    });
    expect(r.status).toBe(404);
    expect(r.json).toEqual({
      error: "unknown_instance",
      message: "no instance with this name is configured; deliver to /webhook/<instances[].name> of the autoscaler config",
    });
    expect(await deliveries("unknown", "unknown_instance")).toBe(1);
  });

  it("missing signature → 401 (also the empty headers of a hook without a secret)", async () => {
    const none = await post("/webhook/fj", push, { "content-type": "application/json", "x-forgejo-event": "push" });
    expect(none.status).toBe(401);
    expect(none.json.message).toBe(
      "the delivery carries no signature: set the webhook's secret in Forgejo to this instance's webhook_secret",
    );
    const empty = buildDelivery("forgejo", "push", { ref: "x" }, {});
    const r = await post("/webhook/fj", empty.body, empty.headers);
    expect(r.status).toBe(401);
  });

  it("wrong signature → 401, in every header form", async () => {
    const forms: Record<string, string>[] = [
      { "x-forgejo-signature": sign(push, "another-secret") },
      { "x-gitea-signature": sign(push, "another-secret") },
      { "x-hub-signature-256": `sha256=${sign(push, "another-secret")}` },
      { "x-forgejo-signature": "abc" },
    ];
    for (const headers of forms) {
      const r = await post("/webhook/fj", push, { "content-type": "application/json", "x-forgejo-event": "push", ...headers });
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.json.message).toBe(
        "the signature does not match: the webhook's secret in Forgejo differs from this instance's webhook_secret",
      );
    }
    // Signed over a different body (tampered in transit).
    const r = await post("/webhook/fj", push.replace("main", "evil"), {
      "content-type": "application/json",
      "x-forgejo-signature": sign(push),
    });
    expect(r.status).toBe(401);
    expect(await deliveries("fj", "bad_signature")).toBeGreaterThanOrEqual(6);
  });

  it("over the size limit → 413, before any work", async () => {
    const big = JSON.stringify({ pad: "x".repeat(4096) });
    const r = await post("/webhook/fj", big, { "content-type": "application/json", "x-forgejo-signature": sign(big) });
    expect(r.status).toBe(413);
    expect(r.json).toEqual({
      error: "body_too_large",
      message: "webhook delivery is larger than the limit of 2048 bytes; raise webhooks.body_limit if this delivery is legitimate",
    });
    expect(await deliveries("fj", "too_large")).toBe(1);
  });

  it("malformed JSON (correctly signed) → 400; an array is not a delivery either", async () => {
    for (const body of ["{not json", "[1,2]", ""]) {
      const r = await post("/webhook/fj", body, { "content-type": "application/json", "x-forgejo-signature": sign(body) });
      expect(r.status, body).toBe(400);
      expect(r.json.error).toBe("malformed");
    }
    expect(await deliveries("fj", "malformed")).toBe(3);
  });

  it("valid deliveries → 202 in milliseconds, whatever the reconcile costs; every signature header and form bodies work", async () => {
    stack.forgejo.delay(1500, "/runners/jobs");
    try {
      const r = stack.autoscaler.reconcilers[0]!;
      const passes = r.passCount;
      for (const opts of [{}, { contentType: "form" as const }]) {
        const d = buildDelivery("forgejo", "push", { ref: "refs/heads/main" }, { secret: WEBHOOK_SECRET, ...opts });
        const res = await post("/webhook/fj", d.body, d.headers);
        expect(res.status).toBe(202);
        expect(res.json).toEqual({ status: "accepted", instance: "fj", event: "push" });
        expect(res.ms).toBeLessThan(500);
      }
      const g = buildDelivery("gitea", "push", { ref: "x" }, { secret: WEBHOOK_SECRET });
      for (const only of ["X-Gitea-Signature", "X-Hub-Signature-256"]) {
        const headers: Record<string, string> = { "Content-Type": "application/json", "X-Gitea-Event": "push" };
        headers[only] = g.headers[only]!;
        expect((await post("/webhook/fj", g.body, headers)).status, only).toBe(202);
      }
      // The deliveries caused a (debounced) reconcile; it is still waiting on the slow Forgejo.
      await waitFor(() => stack.forgejo.callsTo("/runners/jobs").length > 0 && r.passCount >= passes, { what: "reconcile started" });
      await waitFor(() => r.passCount > passes, { what: "reconcile finished", timeoutMs: 10_000 });
    } finally {
      stack.forgejo.delay(0, "/runners/jobs");
    }
  });

  it("an instance without webhook_secret accepts unsigned deliveries", async () => {
    const r = await post("/webhook/open", push, { "content-type": "application/json", "x-forgejo-event": "push" });
    expect(r.status).toBe(202);
  });
});

describe("status API and secrets", () => {
  it("GET /api/v1/status needs a bearer token", async () => {
    const res = await fetch(`${stack.url}/api/v1/status`);
    expect(res.status).toBe(401);
    bodies.push(await res.text());
    const wrong = await fetch(`${stack.url}/api/v1/status`, { headers: { authorization: "Bearer not-the-token-0123456789" } });
    expect(wrong.status).toBe(401);
    bodies.push(await wrong.text());
    const ok = await fetch(`${stack.url}/api/v1/status`, { headers: { authorization: `Bearer ${STATUS_TOKEN}` } });
    expect(ok.status).toBe(200);
    bodies.push(await ok.text());
  });

  it("no secret appears in logs, answers, status or metrics", async () => {
    bodies.push(await (await fetch(`${stack.url}/metrics`)).text());
    bodies.push(await (await fetch(`${stack.url}/readyz`)).text());
    const secrets = [WEBHOOK_SECRET, FAKE_ADMIN_TOKEN, DISPATCHER_TOKEN, STATUS_TOKEN, sign(push)];
    const haystacks = { logs: stack.logs.text(), answers: bodies.join("\n") };
    expect(haystacks.logs.length).toBeGreaterThan(1000);
    for (const [where, text] of Object.entries(haystacks)) {
      for (const s of secrets) expect(text.includes(s), `${where} contains a secret`).toBe(false);
    }
  });
});
