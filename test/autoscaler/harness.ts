import { request } from "undici";
import { createAutoscaler } from "../../src/autoscaler/app.js";
import type { Autoscaler, AutoscalerDeps } from "../../src/autoscaler/app.js";
import { labelNames } from "../../src/autoscaler/labels.js";
import { buildAutoscalerDeps } from "../../src/autoscaler/wiring.js";
import type { AutoscalerStatus } from "../../src/autoscaler/status.js";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import type { Scope } from "../../src/forgejo/scope.js";
import { Metrics } from "../../src/http/metrics.js";
import { startFakeDispatcher } from "../fakes/dispatcher/index.js";
import type { FakeDispatchedRunner, FakeDispatcher, FakeDispatcherOptions } from "../fakes/dispatcher/index.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeForgejoOptions, FakeScope } from "../fakes/forgejo/index.js";
import { captureLogger } from "../helpers/log-capture.js";

export const DISPATCHER_TOKEN = "dispatcher-token-0123456789abcdef";
export const STATUS_TOKEN = "status-token-0123456789abcdef";
export const WEBHOOK_SECRET = "webhook-secret-0123456789abcdef";

export type InstanceSpec = Record<string, unknown> & { name: string };

/** The fake Forgejo's scope for a config scope (user scope belongs to the token's user, "admin"). */
export function fakeScope(s: Scope): FakeScope {
  if (s.level === "organization") return { level: "organization", owner: s.owner ?? "" };
  if (s.level === "repository") return { level: "repository", owner: s.owner ?? "", name: s.name ?? "" };
  if (s.level === "user") return { level: "user", owner: "admin" };
  return { level: "instance" };
}

/**
 * Plays the part of the dispatcher plus forgejo-runner: each runner the autoscaler asks for goes
 * "running" at the dispatcher and registers at the fake Forgejo under the runner's own name,
 * taking its pinned job (handle) or the oldest matching one, as forgejo-runner one-job does.
 */
export function simulateRunners(
  forgejo: FakeForgejo,
  dispatcher: FakeDispatcher,
  opts: { connect?: boolean } = {},
): { uuids: Map<string, string> } {
  const uuids = new Map<string, string>();
  dispatcher.setOnDispatch((runners: FakeDispatchedRunner[]) => {
    for (const r of runners) {
      dispatcher.setState(r.name, "running", "instance ready");
      if (opts.connect === false) continue;
      const { runner } = forgejo.connectRunner({
        registrationToken: forgejo.registrationToken(fakeScope(r.scope)),
        name: r.name,
        labels: labelNames(r.labels),
        ephemeral: true,
        handle: r.job?.handle ?? undefined,
      });
      uuids.set(r.name, runner.uuid);
    }
  });
  return { uuids };
}

export interface Stack {
  forgejo: FakeForgejo;
  dispatcher: FakeDispatcher;
  autoscaler: Autoscaler;
  url: string;
  metrics: Metrics;
  logs: ReturnType<typeof captureLogger>;
  status(): Promise<AutoscalerStatus>;
  /** POST a body to /webhook/<name>. */
  close(): Promise<void>;
}

export interface StackOptions {
  forgejo?: FakeForgejoOptions;
  /** An existing fake Forgejo (several instances on one server). */
  forgejoServer?: FakeForgejo;
  dispatcher?: FakeDispatcherOptions;
  instances?: (url: string) => InstanceSpec[];
  instance?: Partial<InstanceSpec>;
  top?: Record<string, unknown>;
  /** Replaces parts of what buildAutoscalerDeps built (a fake clock, shorter pauses, wrapped clients). */
  deps?: Partial<AutoscalerDeps>;
  start?: boolean;
  /** Listen on this port (when a webhook URL must be known before the start). */
  port?: number;
}

export function instanceConfig(url: string, over: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    name: "fj",
    forgejo: { base_url: url, token: FAKE_ADMIN_TOKEN, timeout: "5s" },
    poll_interval: "1s",
    targets: [{ name: "linux", labels: ["linux:host", "docker"] }],
    ...over,
  };
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const forgejo = opts.forgejoServer ?? (await startFakeForgejo(opts.forgejo ?? {}));
  const dispatcher = await startFakeDispatcher({ token: DISPATCHER_TOKEN, ...opts.dispatcher });
  const logs = captureLogger("debug");
  const config = autoscalerConfigSchema.parse({
    listen: "127.0.0.1:0",
    dispatcher: { url: dispatcher.url, token: DISPATCHER_TOKEN, timeout: "2s" },
    instances: opts.instances ? opts.instances(forgejo.url) : [instanceConfig(forgejo.url, opts.instance)],
    webhooks: { debounce: "50ms" },
    auth: { tokens: [STATUS_TOKEN] },
    ...opts.top,
  });
  // deps.metrics given (even undefined: the daemon's own registry) goes to the wiring, not over it.
  const { metrics: givenMetrics, ...over } = opts.deps ?? {};
  const metrics = opts.deps && "metrics" in opts.deps ? givenMetrics : new Metrics({ defaultMetrics: false });
  const built = buildAutoscalerDeps(config, logs.logger, { metrics });
  const autoscaler = await createAutoscaler({
    ...built,
    tuning: { detectRetryMs: { first: 50, max: 200 }, dispatchRetryBaseMs: 20, ...opts.deps?.tuning },
    webhookRetry: { first: 50, max: 200 },
    ...over,
  });
  await autoscaler.app.listen({ host: "127.0.0.1", port: opts.port ?? 0 });
  const addr = autoscaler.app.server.address();
  const url = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  if (opts.start !== false) autoscaler.start();
  return {
    forgejo,
    dispatcher,
    autoscaler,
    url,
    metrics: built.metrics,
    logs,
    async status() {
      const res = await request(`${url}/api/v1/status`, { headers: { authorization: `Bearer ${STATUS_TOKEN}` } });
      if (res.statusCode !== 200) throw new Error(`status answered ${res.statusCode}: ${await res.body.text()}`);
      return (await res.body.json()) as AutoscalerStatus;
    },
    async close() {
      await autoscaler.stop();
      await dispatcher.close();
      if (!opts.forgejoServer) await forgejo.close();
    },
  };
}

/** A port that was free a moment ago (for configs that must name their own URL). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Accepted dispatches per job id (exactly-once checks). */
export function dispatchesPerJob(d: FakeDispatcher): Map<number, number> {
  const m = new Map<number, number>();
  for (const x of d.dispatches) {
    const id = (x.body.job as { id?: number } | undefined)?.id ?? Number(/:job:(\d+):/.exec(x.key ?? "")?.[1]);
    if (Number.isFinite(id)) m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}
