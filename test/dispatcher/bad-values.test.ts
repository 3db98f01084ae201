import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/** Issue 10, item 7: values that used to be accepted and then broke or spammed something later. */
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ forgejo: { repos: [{ owner: "acme", name: "app" }] }, simulate: false });
});
afterAll(async () => {
  await h?.close();
});

const base = { labels: ["namespace-profile-linux-small"], scope: { level: "repository", owner: "acme", name: "app" } };

async function expect400(body: unknown, field: string, allowed: RegExp): Promise<string> {
  const r = await h.request("POST", "/api/v1/dispatch", body);
  expect(r.status, JSON.stringify(r.body).slice(0, 500)).toBe(400);
  expect(r.body.error).toBe("invalid_request");
  const problem = (r.body.details.problems as string[]).find(
    (p) => p.startsWith(`${field}:`) || p.startsWith(`${field}.`) || p.startsWith(`${field} `),
  );
  expect(problem, `a problem naming ${field} in ${JSON.stringify(r.body.details.problems)}`).toBeDefined();
  expect(problem).toMatch(allowed);
  return JSON.stringify(r.body);
}

describe("POST /api/v1/dispatch refuses bad values with a 400 that names the field", () => {
  it("control characters in labels", async () => {
    await expect400({ ...base, labels: ["linux\u0000medium"] }, "labels[0]", /control characters/);
    await expect400({ ...base, labels: ["linux-\u001b[31mred"] }, "labels[0]", /control characters/);
    await expect400({ ...base, labels: ["a\u202eb"] }, "labels[0]", /control characters/);
  });

  it("control characters or spaces in the image", async () => {
    await expect400({ ...base, image: "alpine\u0000:3" }, "image", /image reference such as .*letters, digits/);
    await expect400({ ...base, image: "alpine:3\n" }, "image", /image reference/);
  });

  it("control characters in env keys and NUL in env values", async () => {
    // The key's problem is listed under env (as "env.<key>:" or "env: key <key>:").
    await expect400({ ...base, env: { "A\u0000B": "v" } }, "env", /shell variable names/);
    await expect400({ ...base, env: { GOOD: "a\u0000b" } }, "env.GOOD", /must not contain NUL/);
  });

  it("a TTL under the one-minute minimum", async () => {
    await expect400({ ...base, ttl: "1ms" }, "ttl", /"1ms" is outside the allowed range: use 1m to 24h/);
    await expect400({ ...base, ttl: "59s" }, "ttl", /use 1m to 24h/);
    expect((await h.request("POST", "/api/v1/dispatch", { ...base, ttl: "1m" })).status).toBe(202);
  });

  it("a 60 KB owner is refused and never echoed back or logged in full", async () => {
    const owner = "o".repeat(60_000);
    const text = await expect400({ ...base, scope: { level: "repository", owner, name: "app" } }, "scope.owner", /1 to 40 letters, digits/);
    expect(text).toContain("60000 characters");
    expect(text.length).toBeLessThan(2_000);
    expect(h.logs()).not.toContain("o".repeat(200));
    // A huge env key: the path that names it is cut short too.
    const key = `K${"k".repeat(60_000)}`;
    const keyText = JSON.stringify((await h.request("POST", "/api/v1/dispatch", { ...base, env: { [key]: "v" } })).body);
    expect(keyText.length).toBeLessThan(2_000);
  });

  it("a JSON body of null (or an array, or a number) is not taken for {}", async () => {
    for (const [body, what] of [
      ["null", "null"],
      ["[]", "an array"],
      ["7", "number"],
    ] as const) {
      const r = await h.request("POST", "/api/v1/dispatch", body);
      expect(r.status).toBe(400);
      expect(r.body.message).toContain(`the body must be a JSON object such as {"count": 1}, not ${what}`);
    }
  });

  it("nothing was launched for any refused request", async () => {
    const launched = (h.nsc.calls("run") as { argv: string[] }[]).length;
    // Only the one valid "1m" dispatch above may have reached nsc.
    expect(launched).toBeLessThanOrEqual(1);
  });
});
