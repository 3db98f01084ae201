import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertSafeListen } from "../../src/dispatcher/app.js";
import { tempDir } from "../helpers/tmp.js";
import { API_TOKEN, startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

const run = promisify(execFile);

describe("listening without tokens", () => {
  it("is refused on a non-loopback address unless explicitly allowed", () => {
    expect(() => assertSafeListen("0.0.0.0:8080", [], false)).toThrow(/refusing to listen on 0\.0\.0\.0:8080 without API tokens/);
    expect(() => assertSafeListen(":8080", [], false)).toThrow(/auth\.tokens/);
    expect(() => assertSafeListen("0.0.0.0:8080", [], true)).not.toThrow();
    expect(() => assertSafeListen("0.0.0.0:8080", ["a-token-of-sixteen+"], false)).not.toThrow();
    expect(() => assertSafeListen("127.0.0.1:8080", [], false)).not.toThrow();
    expect(() => assertSafeListen("[::1]:8080", [], false)).not.toThrow();
  });

  it("makes the daemon exit 1 before listening, saying what to do", async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, "d.yaml");
    writeFileSync(file, "listen: 0.0.0.0:18080\nforgejo: {base_url: 'https://f.example', token: pat-value}\n");
    const err = await run(process.execPath, ["--import", "tsx", "src/bin/dispatcher.ts", "--config", file, "--check"]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    tmp.cleanup();
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toMatch(/refusing to listen on 0\.0\.0\.0:18080 without API tokens/);
    expect((err as { stderr: string }).stderr).not.toContain("pat-value");
  });
});

describe("open and protected endpoints", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      simulate: false,
      yaml:
        "auth:\n  tokens: [" +
        API_TOKEN +
        "]\n  protect_metrics: true\nhttp:\n  rate_limit_per_minute: 3\nnamespace:\n  nsc_binary: /nonexistent/nsc\n",
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("/healthz stays open; /readyz is open and names what is not ready", async () => {
    const health = await fetch(`${h.url}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { problems: Record<string, string> }).problems.nsc).toBe(
      'nsc executable "/nonexistent/nsc" not found; set namespace.nsc_binary',
    );
  });

  it("/metrics needs the token when protect_metrics is set", async () => {
    expect((await fetch(`${h.url}/metrics`)).status).toBe(401);
    const ok = await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("forgejo_nsc_dispatch_requests_total");
  });

  it("rate-limits dispatches per client with Retry-After", async () => {
    const body = { labels: ["l"], count: 1 };
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await h.request("POST", "/api/v1/dispatch", body)).status);
    expect(statuses.slice(0, 3).every((s) => s === 202)).toBe(true);
    const limited = await h.request("POST", "/api/v1/dispatch", body);
    expect(limited.status).toBe(429);
    expect(limited.body.message).toMatch(/more than 3 requests per minute from 127\.0\.0\.1/);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    // Reads are not rate-limited.
    expect((await h.request("GET", "/api/v1/runners")).status).toBe(200);
  });
});
