import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import type { DispatcherConfig } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { createDispatcher } from "../../src/dispatcher/app.js";
import type { Dispatcher, DispatcherDeps } from "../../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../../src/dispatcher/wiring.js";
import type { Store } from "../../src/store/types.js";
import { createFakeComputeApi } from "../fakes/compute-api/index.js";
import type { FakeComputeApi } from "../fakes/compute-api/index.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeForgejoOptions } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc, FakeNscKnobs } from "../fakes/nsc/index.js";
import { startRunnerSimulator } from "../fakes/runner-sim.js";
import { fetchJson } from "../helpers/fetch-json.js";
import type { JsonReply } from "../helpers/fetch-json.js";
import { captureLogger } from "../helpers/log-capture.js";
import { recordSecrets } from "../helpers/secrets.js";
import { tempDir } from "../helpers/tmp.js";

export const API_TOKEN = "test-dispatcher-api-token-0123456789";

export interface Harness {
  forgejo: FakeForgejo;
  nsc: FakeNsc;
  /** With `computeApi`: the fake Compute API, backed by `nsc` for Linux containers. */
  compute: FakeComputeApi | undefined;
  dispatcher: Dispatcher;
  store: Store;
  config: DispatcherConfig;
  url: string;
  logs: () => string;
  sim: ReturnType<typeof startRunnerSimulator> | undefined;
  /** Shifts the dispatcher's clock and the fake nsc's clock together. */
  advance(ms: number): void;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<JsonReply>;
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
    /**
     * namespace.linux_launch: compute_api against a fake Compute API whose Linux instances live in
     * the fake nsc (region ord4, a token file for it). CreateInstance answers RUNNING at once: the
     * DescribeInstance wait is the launcher tests' subject, and a simulated job may end within one poll.
     */
    computeApi?: boolean;
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
  let compute: FakeComputeApi | undefined;
  let computeYaml = "";
  if (opts.computeApi) {
    compute = await createFakeComputeApi({ nsc, region: "ord4" });
    compute.setKnobs({ initialStatus: "RUNNING" });
    recordSecrets([compute.token]);
    const tokenFile = join(tmp.dir, "namespace-token.json");
    writeFileSync(tokenFile, JSON.stringify({ bearer_token: compute.token }), { mode: 0o600 });
    computeYaml = `namespace:\n  linux_launch: compute_api\n  token_file: ${tokenFile}\n  region: ord4\n  compute_base_url: ${compute.url}\n`;
  }
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
${computeYaml}${opts.yaml ?? ""}`;
  const config = parseConfig(dispatcherConfigSchema, mergeYaml(yaml), "harness.yaml", {});
  const cap = captureLogger("debug");
  const built = await buildDispatcherDeps(config, cap.logger);
  const deps = opts.customize ? opts.customize(built) : built;
  const dispatcher = await createDispatcher({ ...deps, now, timers: opts.timers ?? false });
  await dispatcher.start();
  const address = await dispatcher.app.listen({ host: "127.0.0.1", port: 0 });
  const sim =
    opts.simulate === false ? undefined : startRunnerSimulator({ nsc, forgejo, dir: join(tmp.dir, "sim"), jobMs: opts.jobMs ?? 100 });
  return {
    forgejo,
    nsc,
    compute,
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
    request: (method, path, body, headers = {}) =>
      fetchJson(`${address}${path}`, { method, body, headers: { authorization: `Bearer ${API_TOKEN}`, ...headers } }),
    async close() {
      sim?.stop();
      await dispatcher.stop();
      await deps.store.close();
      if (built.store !== deps.store) await built.store.close();
      await forgejo.close();
      await compute?.close();
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
