import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { repeatLimit } from "../../src/http/repeat-limit.js";
import { startStack } from "../autoscaler/harness.js";
import type { Stack } from "../autoscaler/harness.js";
import { startHarness } from "../dispatcher/harness.js";
import type { Harness } from "../dispatcher/harness.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Issue 10, item 15: what an operator reads at the default level. Routine reads (the autoscaler
 * polls the dispatcher every few seconds) are debug; a transition names its state once; a failure
 * that repeats on every tick is a warning when it starts or changes, not on every tick.
 */
interface Line {
  level: number;
  msg: string;
  req?: { method?: string; url?: string };
  repeated?: number | boolean;
}
const parse = (text: string): Line[] =>
  text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
const INFO = 30;
const WARN = 40;

describe("dispatcher request log", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ forgejo: { repos: [{ owner: "example", name: "app" }] } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it("logs successful reads at debug and everything else at info", async () => {
    for (let i = 0; i < 3; i++) expect((await h.request("GET", "/api/v1/runners?state=pending,running")).status).toBe(200);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    expect((await h.request("POST", "/api/v1/dispatch", { count: 0 })).status).toBe(400);
    expect((await h.request("GET", "/api/v1/runners/nscloud-nosuchrunner")).status).toBe(404);
    const lines = parse(h.logs());
    // Fastify's "request completed" line carries no req; find it by the request id of "incoming request".
    const byReq = new Map<string, Line[]>();
    for (const l of lines as (Line & { reqId?: string })[]) {
      if (l.reqId) byReq.set(l.reqId, [...(byReq.get(l.reqId) ?? []), l]);
    }
    const levelsFor = (method: string, url: string) =>
      [...byReq.values()]
        .filter((ls) => ls.some((l) => l.req?.method === method && l.req.url?.startsWith(url)))
        .map((ls) => Math.max(...ls.filter((l) => /^request (completed|errored)|^incoming request/.test(l.msg)).map((l) => l.level)));
    expect(levelsFor("GET", "/api/v1/runners?").length).toBe(3);
    expect(levelsFor("GET", "/api/v1/runners?").every((lv) => lv < INFO)).toBe(true);
    expect(levelsFor("GET", "/healthz").every((lv) => lv < INFO)).toBe(true);
    expect(levelsFor("POST", "/api/v1/dispatch")).toEqual([INFO]);
    expect(levelsFor("GET", "/api/v1/runners/nscloud-nosuchrunner")).toEqual([INFO]);
  });

  it("a transition names its state once", async () => {
    const job = h.forgejo.addJob({ repo: "example/app", runs_on: ["namespace-profile-linux-medium"] });
    const r = await h.request("POST", "/api/v1/dispatch", {
      labels: ["namespace-profile-linux-medium"],
      scope: { level: "repository", owner: "example", name: "app" },
      job: { id: job.id, handle: job.handle },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const name = r.body.runners[0].name as string;
    await waitFor(
      async () => {
        await h.dispatcher.supervisor.tick();
        return (await h.store.getRunner(name))?.state === "done";
      },
      { what: "the runner to finish", timeoutMs: 15_000, intervalMs: 50 },
    );
    const transitions = parse(h.logs()).filter((l) => l.msg.startsWith(`runner ${name} -> `));
    expect(transitions.some((l) => l.msg.startsWith(`runner ${name} -> finishing: `))).toBe(true);
    expect(transitions.filter((l) => /-> (\w+): \1\b/.test(l.msg)).map((l) => l.msg)).toEqual([]);
  });
});

describe("a Compute API that keeps failing", () => {
  const tmp = tempDir("fnsc-noise-");
  let h: Harness;
  beforeAll(async () => {
    const tokenFile = join(tmp.dir, "nsc-token.json");
    writeFileSync(tokenFile, '{"bearer_token": "nsc-bearer-noise-0123456789"}');
    // Port 1 on loopback: nothing listens, every ListInstances fails the same way.
    h = await startHarness({ simulate: false, yaml: `namespace:\n  token_file: ${tokenFile}\n  compute_base_url: http://127.0.0.1:1\n` });
  });
  afterAll(async () => {
    await h?.close();
    tmp.cleanup();
  });

  it("is a warning when it starts, not on every tick", async () => {
    for (let i = 0; i < 4; i++) {
      const report = await h.dispatcher.supervisor.tick();
      expect(report.observed.macos).toBe("error");
    }
    const listing = parse(h.logs()).filter((l) => l.msg.startsWith("could not list instances"));
    expect(listing).toHaveLength(4);
    expect(listing.filter((l) => l.level >= WARN)).toHaveLength(1);
    // Still visible: every failed call is counted.
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/forgejo_nsc_namespace_calls_total\{api="compute",command="ListInstances",outcome="[a-z_]+"\} [4-9]/);
  });
});

describe("autoscaler: a dispatcher that stays down", () => {
  let s: Stack | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it("warns when the failure starts, says when it ends, and stays quiet in between", async () => {
    s = await startStack({ forgejo: { version: "15.0.3" }, deps: { tuning: { pollIntervalMs: 100 } } });
    const stack = s;
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 1, { what: "first pass" });
    await stack.dispatcher.stop();
    stack.forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const failedFrom = await waitFor(async () => ((await stack.status()).instances[0]!.last_error ? r.passCount : undefined), {
      what: "the failure",
    });
    await waitFor(() => r.passCount >= failedFrom + 3, { what: "more failing passes", timeoutMs: 15_000 });
    const during = parse(stack.logs.text()).filter((l) => l.msg === "reconcile pass incomplete");
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect(during.filter((l) => l.level >= WARN)).toHaveLength(1);
    // The status API keeps showing it.
    expect((await stack.status()).instances[0]!.last_error?.message).toContain("cannot reach the dispatcher");

    await stack.dispatcher.start();
    await waitFor(() => parse(stack.logs.text()).some((l) => l.msg === "reconcile pass complete again" && l.level === INFO), {
      what: "the recovery line",
      timeoutMs: 15_000,
    });
  });
});

describe("repeatLimit", () => {
  it("writes a repeated warning once per window, then again with the number demoted; a change is written at once", () => {
    let t = 0;
    const lines: Line[] = [];
    const logger = pino(
      { level: "debug", hooks: { logMethod: repeatLimit(60_000, () => new Date(t)) } },
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(JSON.parse(String(chunk)) as Line);
          cb();
        },
      }),
    );
    const child = logger.child({ component: "supervisor" });
    for (let i = 0; i < 3; i++) child.warn({ err: "ECONNREFUSED" }, "could not list instances");
    child.warn({ err: "HTTP 503" }, "could not list instances");
    child.warn({ err: "HTTP 503" }, "could not list instances");
    t = 61_000;
    child.warn({ err: "HTTP 503" }, "could not list instances");
    child.error("tick failed");
    child.error("tick failed");
    logger.fatal("fatal stays");
    logger.fatal("fatal stays");
    expect(lines.map((l) => [l.level, l.repeated ?? null])).toEqual([
      [WARN, null],
      [20, true],
      [20, true],
      [WARN, null],
      [20, true],
      [WARN, 1],
      [50, null],
      [20, true],
      [60, null],
      [60, null],
    ]);
  });
});
