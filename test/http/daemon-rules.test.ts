import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { createAutoscaler } from "../../src/autoscaler/app.js";
import { buildAutoscalerDeps } from "../../src/autoscaler/wiring.js";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { createDispatcher } from "../../src/dispatcher/app.js";
import type { ForgejoApi } from "../../src/forgejo/types.js";
import type { DaemonName } from "../../src/http/daemon.js";
import { unsafeListenProblem } from "../../src/http/listen-safety.js";
import { Metrics } from "../../src/http/metrics.js";
import { createServer, internalErrorMessage } from "../../src/http/server.js";
import { openStore } from "../../src/store/open-store.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";

describe("the listen-safety rule of both daemons", () => {
  const cases: { listen: string; tokens: string[]; allow: boolean; refused: boolean }[] = [
    { listen: "0.0.0.0:8080", tokens: [], allow: false, refused: true },
    { listen: ":8080", tokens: [], allow: false, refused: true },
    { listen: "192.168.1.5:8080", tokens: [], allow: false, refused: true },
    { listen: "0.0.0.0:8080", tokens: [], allow: true, refused: false },
    { listen: "0.0.0.0:8080", tokens: ["a-token-of-sixteen+"], allow: false, refused: false },
    { listen: "127.0.0.1:8080", tokens: [], allow: false, refused: false },
    { listen: "127.3.4.5:8080", tokens: [], allow: false, refused: false },
    { listen: "localhost:8080", tokens: [], allow: false, refused: false },
    { listen: "[::1]:8080", tokens: [], allow: false, refused: false },
  ];
  for (const daemon of ["dispatcher", "autoscaler"] as const) {
    for (const c of cases) {
      it(`${daemon}: ${c.listen}, ${c.tokens.length} token(s), allow_unauthenticated ${c.allow} → ${c.refused ? "refused" : "fine"}`, () => {
        const problem = unsafeListenProblem(daemon, c.listen, { tokens: c.tokens, allow_unauthenticated: c.allow });
        if (!c.refused) return expect(problem).toBeUndefined();
        expect(problem).toContain(`refusing to listen on ${c.listen} without API tokens`);
        expect(problem).toContain("Set auth.tokens (or auth.tokens_file), listen on 127.0.0.1, or set auth.allow_unauthenticated: true");
      });
    }
  }

  it("says what each daemon would expose", () => {
    const open = { tokens: [], allow_unauthenticated: false };
    expect(unsafeListenProblem("dispatcher", "0.0.0.0:1", open)).toContain("could start paid instances");
    expect(unsafeListenProblem("autoscaler", "0.0.0.0:1", open)).toContain("could read the status API");
  });

  it("the autoscaler's config refuses what the dispatcher refuses, with the same words", () => {
    const r = autoscalerConfigSchema.safeParse({
      listen: "0.0.0.0:8081",
      dispatcher: { url: "http://127.0.0.1:8080" },
      instances: [{ name: "fj", forgejo: { base_url: "https://f.example", token: "pat" }, targets: [{ labels: ["linux"] }] }],
    });
    expect(r.success).toBe(false);
    const issue = r.error?.issues.find((i) => i.path.join(".") === "auth.tokens");
    expect(issue?.message).toBe(unsafeListenProblem("autoscaler", "0.0.0.0:8081", { tokens: [], allow_unauthenticated: false }));
  });
});

/** Adds a route that fails unexpectedly and asks it. */
async function answerOfAFailure(
  app: FastifyInstance,
): Promise<{ status: number; body: { error: string; message: string; request_id: string } }> {
  app.get("/boom", async () => {
    throw new Error("unexpected");
  });
  const res = await app.inject({ method: "GET", url: "/boom" });
  return { status: res.statusCode, body: res.json() };
}

describe("the 500 answer names the daemon whose log has the details", () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });
  const limits = {
    headers_timeout: 10_000,
    request_timeout: 30_000,
    connection_timeout: 60_000,
    keep_alive_timeout: 130_000,
    max_connections: 10,
  };

  for (const daemon of ["dispatcher", "autoscaler"] as const satisfies readonly DaemonName[]) {
    it(`createServer for the ${daemon}`, async () => {
      const app = createServer({ daemon, logger: captureLogger().logger, bodyLimit: 1024, trustProxy: false, limits });
      closers.push(() => app.close());
      const { status, body } = await answerOfAFailure(app);
      expect(status).toBe(500);
      expect(body.message).toBe(internalErrorMessage(daemon));
      expect(body.message).toBe(`internal error; the ${daemon} log has the details under this request id`);
      expect(body.request_id).toEqual(expect.any(String));
    });
  }

  it("the autoscaler's app says autoscaler", async () => {
    const config = autoscalerConfigSchema.parse({
      listen: "127.0.0.1:0",
      dispatcher: { url: "http://127.0.0.1:9" },
      instances: [{ name: "fj", forgejo: { base_url: "http://127.0.0.1:9", token: "pat" }, targets: [{ labels: ["linux"] }] }],
    });
    const a = await createAutoscaler(
      buildAutoscalerDeps(config, captureLogger().logger, { metrics: new Metrics({ defaultMetrics: false }) }),
    );
    closers.push(() => a.stop());
    const { status, body } = await answerOfAFailure(a.app);
    expect(status).toBe(500);
    expect(body.message).toContain("the autoscaler log has the details");
  });

  it("the dispatcher's app says dispatcher", async () => {
    const tmp = tempDir("fnsc-500-");
    const config = dispatcherConfigSchema.parse({
      listen: "127.0.0.1:0",
      forgejo: { base_url: "http://127.0.0.1:9", token: "pat" },
      dispatcher: { state_path: join(tmp.dir, "state.db") },
    });
    const { logger } = captureLogger();
    const store = await openStore(config.dispatcher.state_path, { logger });
    const d = await createDispatcher({
      config,
      logger,
      store,
      forgejo: {} as ForgejoApi,
      launchers: {},
      metrics: new Metrics({ defaultMetrics: false }),
      timers: false,
    });
    closers.push(async () => {
      await d.app.close();
      await store.close();
      tmp.cleanup();
    });
    const { status, body } = await answerOfAFailure(d.app);
    expect(status).toBe(500);
    expect(body.message).toContain("the dispatcher log has the details");
  });
});
