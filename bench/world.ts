import { join } from "node:path";
import pino from "pino";
import { dispatcherConfigSchema } from "../src/config/dispatcher-schema.js";
import type { DispatcherConfig } from "../src/config/dispatcher-schema.js";
import { parseConfig } from "../src/config/load.js";
import { createDispatcher } from "../src/dispatcher/app.js";
import type { Dispatcher, DispatcherDeps } from "../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../src/dispatcher/wiring.js";
import { createLogger } from "../src/http/logger.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../test/fakes/forgejo/index.js";
import type { FakeForgejo } from "../test/fakes/forgejo/index.js";
import { createFakeNsc } from "../test/fakes/nsc/index.js";
import type { FakeNsc, FakeNscKnobs } from "../test/fakes/nsc/index.js";
import { tempDir } from "../test/helpers/tmp.js";
import { benchStore } from "./bench-store.js";

export const BENCH_API_TOKEN = "bench-dispatcher-api-token-0123456789";

export interface BenchWorld {
  dir: string;
  forgejo: FakeForgejo;
  nsc: FakeNsc;
  config: DispatcherConfig;
  deps: DispatcherDeps;
  dispatcher: Dispatcher;
  logFile: string;
  close(): Promise<void>;
}

/**
 * The real dispatcher (config, wiring, SQLite store, NscCli, LinuxLauncher, Supervisor, Scheduler,
 * HTTP routes) in this process, against the fake Forgejo and the fake nsc executable. Timers are
 * off: the benchmark drives supervision ticks itself; launches are driven by the scheduler's kicks.
 */
export async function startBenchWorld(opts: { maxParallel?: number; knobs?: FakeNscKnobs; logLevel?: string } = {}): Promise<BenchWorld> {
  const tmp = tempDir("forgejo-nsc-bench-");
  const forgejo = await startFakeForgejo();
  const nsc = createFakeNsc(join(tmp.dir, "nsc"), opts.knobs);
  const where = await benchStore(tmp.dir);
  // NscCli passes this process's environment on to nsc: the fake finds its state through it.
  Object.assign(process.env, nsc.env);
  const config = parseConfig(
    dispatcherConfigSchema,
    `listen: 127.0.0.1:0
forgejo: { base_url: "${forgejo.url}", token: "${FAKE_ADMIN_TOKEN}" }
namespace: { nsc_binary: "${nsc.bin}", workdir: /tmp/forgejo-runner, max_parallel: ${opts.maxParallel ?? 4}, max_runners: 100000 }
dispatcher: { ${where.yaml}, max_queue: 100000 }
auth: { tokens: ["${BENCH_API_TOKEN}"] }
http: { rate_limit_per_minute: 0 }
`,
    "benchmark dispatcher config",
    {},
  );
  const logFile = join(tmp.dir, "dispatcher.log");
  const dest = pino.destination({ dest: logFile, sync: false, mkdir: true });
  const logger = createLogger(opts.logLevel ?? "info", "forgejo-nsc-dispatcher", dest);
  const deps = await buildDispatcherDeps(config, logger);
  const dispatcher = await createDispatcher({ ...deps, timers: false });
  return {
    dir: tmp.dir,
    forgejo,
    nsc,
    config,
    deps,
    dispatcher,
    logFile,
    async close() {
      await dispatcher.stop();
      await deps.store.close();
      await where.drop();
      await forgejo.close();
      dest.flushSync();
      tmp.cleanup();
    },
  };
}
