import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redactUrl } from "../../src/http/logger.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/** Issue 10, item 6: `?access_token=…` appeared verbatim in the request log's URL. */
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ simulate: false });
});
afterAll(async () => {
  await h?.close();
});

const VALUES = [
  "qs-secret-value-access-0001",
  "qs-secret-value-token-0002",
  "qs-secret-value-key-0003",
  "qs-secret-value-secret-0004",
  "qs-secret-value-pass-0005",
];

describe("request logs", () => {
  it("never carry the value of a secret-looking query parameter", async () => {
    const [a, t, k, s, p] = VALUES as [string, string, string, string, string];
    const paths = [
      `/api/v1/runners?access_token=${a}&state=running`,
      `/api/v1/runners?token=${t}`,
      `/healthz?api_key=${k}&x=1`,
      `/api/v1/runners/nope?client_secret=${s}`,
      `/no-such-route?password=${p}&Token=${t}`,
      `/healthz?ACCESS_TOKEN=${encodeURIComponent(a)}`,
    ];
    for (const path of paths) await h.request("GET", path);
    const logs = h.logs();
    for (const v of VALUES) expect(logs).not.toContain(v);
    // The route and the harmless parameters are still there to debug with.
    expect(logs).toContain('"url":"/api/v1/runners?access_token=[redacted]&state=running"');
    expect(logs).toContain('"url":"/healthz?api_key=[redacted]&x=1"');
  });

  it("redactUrl keeps ordinary parameters and cuts secret-looking ones", () => {
    expect(redactUrl("/a?wait=finished&timeout=5m")).toBe("/a?wait=finished&timeout=5m");
    expect(redactUrl("/a?sig=abc&X-Amz-Signature=def&auth=ghi&session_id=1")).toBe(
      "/a?sig=[redacted]&X-Amz-Signature=[redacted]&auth=[redacted]&session_id=[redacted]",
    );
    expect(redactUrl("/a?%74oken=x")).toBe("/a?%74oken=[redacted]");
    expect(redactUrl("/a")).toBe("/a");
  });
});
