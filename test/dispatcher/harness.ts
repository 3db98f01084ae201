import { join } from "node:path";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import type { DispatcherConfig } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { createDispatcher } from "../../src/dispatcher/app.js";
import type { Dispatcher, DispatcherDeps } from "../../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../../src/dispatcher/wiring.js";
import type { Store } from "../../src/store/types.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeForgejoOptions } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc, FakeNscKnobs } from "../fakes/nsc/index.js";
import { startRunnerSimulator } from "../fakes/runner-sim.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";

export const API_TOKEN = "test-dispatcher-api-token-0123456789";

export interface Harness {
  forgejo: FakeForgejo;
  nsc: FakeNsc;
  dispatcher: Dispatcher;
  store: Store;
  config: DispatcherConfig;
  url: string;
  logs: () => string;
  sim: ReturnType<typeof startRunnerSimulator> | undefined;
  /** Shifts the dispatcher's clock and the fake nsc's clock together. */
  advance(ms: number): void;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

/**
 * A real dispatcher (real ForgejoClient, NscCli, LinuxLauncher, SQLite store, HTTP on loopback)
 * against the fake Forgejo and the fake nsc executable. Supervision ticks are driven by the test
 * (`dispatcher.supervisor.tick()`) unless `timers` is true.
 */
export async function startHarness(
  opts: {
    forgejo?: FakeForgejoOptions;
    yaml?: string;
    knobs?: FakeNscKnobs;
    simulate?: boolean;
    timers?: boolean;
    jobMs?: number;
    /** Replaces parts of the real dependencies (a store wrapper, launchers on an NscCli with short limits). */
    customize?: (deps: DispatcherDeps) => DispatcherDeps;
  } = {},
): Promise<Harness> {
  const tmp = tempDir("fnsc-disp-");
  const forgejo = await startFakeForgejo(opts.forgejo);
  const nsc = createFakeNsc(join(tmp.dir, "nsc"), opts.knobs);
  Object.assign(process.env, nsc.env);
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const yaml = `
listen: 127.0.0.1:0
forgejo:
  base_url: ${forgejo.url}
  token: ${FAKE_ADMIN_TOKEN}
  timeout: 2s
namespace:
  nsc_binary: ${nsc.bin}
  workdir: ${join(tmp.dir, "runner-work")}
  wait_timeout: 20s
dispatcher:
  state_path: ${join(tmp.dir, "state.db")}
  supervise_interval: 200ms
auth:
  tokens: [${API_TOKEN}]
${opts.yaml ?? ""}`;
  const config = parseConfig(dispatcherConfigSchema, mergeYaml(yaml), "harness.yaml", {});
  const cap = captureLogger("debug");
  const built = await buildDispatcherDeps(config, cap.logger);
  const deps = opts.customize ? opts.customize(built) : built;
  const dispatcher = await createDispatcher({ ...deps, now, timers: opts.timers ?? false });
  await dispatcher.start();
  const address = await dispatcher.app.listen({ host: "127.0.0.1", port: 0 });
  const sim = opts.simulate === false ? undefined : startRunnerSimulator({ nsc, forgejo, dir: join(tmp.dir, "sim"), jobMs: opts.jobMs ?? 100 });
  return {
    forgejo,
    nsc,
    dispatcher,
    store: deps.store,
    config,
    url: address,
    logs: cap.text,
    sim,
    advance(ms) {
      offset += ms;
      nsc.advanceTime(ms);
    },
    async request(method, path, body, headers = {}) {
      const res = await fetch(`${address}${path}`, {
        method,
        headers: { authorization: `Bearer ${API_TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async close() {
      sim?.stop();
      await dispatcher.stop();
      await deps.store.close();
      if (built.store !== deps.store) await built.store.close();
      await forgejo.close();
      tmp.cleanup();
    },
  };
}

/** Later top-level YAML sections replace earlier ones key by key (tests override a section's keys). */
function mergeYaml(text: string): string {
  const sections = new Map<string, string[]>();
  let current = "";
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    if (!line.startsWith(" ")) {
      current = line.split(":")[0] as string;
      const inline = line.slice(current.length + 1).trim();
      if (inline) {
        sections.set(current, [line]);
        continue;
      }
      if (!sections.has(current)) sections.set(current, [line]);
      continue;
    }
    const body = sections.get(current) as string[];
    const key = line.trim().split(":")[0];
    const existing = body.findIndex((l, i) => i > 0 && l.startsWith("  ") && !l.startsWith("   ") && l.trim().split(":")[0] === key);
    if (existing > 0) body[existing] = line;
    else body.push(line);
  }
  return [...sections.values()].map((b) => b.join("\n")).join("\n") + "\n";
}
