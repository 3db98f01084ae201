import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack } from "../autoscaler/harness.js";
import type { Stack } from "../autoscaler/harness.js";
import { startHarness } from "../dispatcher/harness.js";
import { waitFor } from "../helpers/wait.js";
import type { Harness } from "../dispatcher/harness.js";

/**
 * Issue 10, item 14: what each daemon's /metrics really serves. Process metrics carry one prefix,
 * each daemon serves only its own families, the autoscaler's per-forge label does not collide with
 * Prometheus's target label `instance`, and 401/429 answers to a dispatch are counted.
 */
const DISPATCHER_ONLY = [
  "forgejo_nsc_dispatch_requests_total",
  "forgejo_nsc_runners",
  "forgejo_nsc_runner_transitions_total",
  "forgejo_nsc_launch_duration_seconds",
  "forgejo_nsc_time_to_running_seconds",
  "forgejo_nsc_namespace_calls_total",
  "forgejo_nsc_supervise_tick_seconds",
];
const AUTOSCALER_ONLY = [
  "forgejo_nsc_webhook_deliveries_total",
  "forgejo_nsc_reconcile_duration_seconds",
  "forgejo_nsc_last_successful_reconcile_timestamp_seconds",
  "forgejo_nsc_waiting_jobs",
  "forgejo_nsc_idle_runners",
  "forgejo_nsc_in_flight_runners",
  "forgejo_nsc_dispatcher_calls_total",
];

/** Metric family names declared in a Prometheus text exposition. */
const families = (text: string) => new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));

describe("dispatcher /metrics", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ simulate: false, yaml: "http:\n  rate_limit_per_minute: 1\n" });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("counts 401 and 429 answers to a dispatch", async () => {
    expect((await h.request("POST", "/api/v1/dispatch", { count: 1 }, { authorization: "Bearer wrong-token-0123456789" })).status).toBe(
      401,
    );
    expect((await h.request("POST", "/api/v1/dispatch", { count: 0 })).status).toBe(400);
    expect((await h.request("POST", "/api/v1/dispatch", { count: 0 })).status).toBe(429);
    const text = await (await fetch(`${h.url}/metrics`)).text();
    expect(text).toContain('forgejo_nsc_dispatch_requests_total{outcome="unauthorized"} 1');
    expect(text).toContain('forgejo_nsc_dispatch_requests_total{outcome="invalid"} 1');
    expect(text).toContain('forgejo_nsc_dispatch_requests_total{outcome="rate_limited"} 1');
  });

  it("serves its own families and process metrics with one prefix, not the autoscaler's", async () => {
    const text = await (await fetch(`${h.url}/metrics`)).text();
    const names = families(text);
    expect(names).toContain("forgejo_nsc_process_cpu_seconds_total");
    expect(names).toContain("forgejo_nsc_nodejs_eventloop_lag_seconds");
    expect(text).not.toContain("forgejo_nsc_process_process_");
    expect(text).not.toContain("forgejo_nsc_process_nodejs_");
    for (const n of DISPATCHER_ONLY) expect(names).toContain(n);
    expect(names).toContain("forgejo_nsc_forgejo_calls_total");
    expect(AUTOSCALER_ONLY.filter((n) => names.has(n))).toEqual([]);
  });
});

describe("autoscaler /metrics", () => {
  let s: Stack;
  beforeAll(async () => {
    // No metrics injected: the autoscaler builds its own, as the daemon does.
    s = await startStack({ deps: { metrics: undefined } });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("labels per-forge series `forge`, not Prometheus's `instance`, and serves only its own families", async () => {
    const res = await fetch(`${s.url}/webhook/fj`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forgejo-event": "push" },
      body: "{}",
    });
    expect(res.status).toBe(202);
    const text = await waitFor(
      async () => {
        const t = await (await fetch(`${s.url}/metrics`)).text();
        return /forgejo_nsc_last_successful_reconcile_timestamp_seconds\{/.test(t) ? t : undefined;
      },
      { what: "a finished reconcile pass" },
    );
    expect(text).toContain('forgejo_nsc_webhook_deliveries_total{forge="fj",result="accepted"} 1');
    expect(text).toMatch(/forgejo_nsc_waiting_jobs\{forge="fj",target="none"\} \d/);
    const ours = text.split("\n").filter((l) => l.startsWith("forgejo_nsc_") && !/^forgejo_nsc_(process|nodejs)_/.test(l));
    expect(ours.filter((l) => /[{,]instance="/.test(l))).toEqual([]);
    const names = families(text);
    expect(names).toContain("forgejo_nsc_process_cpu_seconds_total");
    expect(text).not.toContain("forgejo_nsc_process_process_");
    for (const n of AUTOSCALER_ONLY) expect(names).toContain(n);
    expect(DISPATCHER_ONLY.filter((n) => names.has(n))).toEqual([]);
  });
});
