import { spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import pino from "pino";
import { dispatcherConfigSchema } from "../src/config/dispatcher-schema.js";
import { parseConfig } from "../src/config/load.js";
import { createDispatcher } from "../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../src/dispatcher/wiring.js";
import { createLogger } from "../src/http/logger.js";
import type { Store } from "../src/store/types.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../test/fakes/forgejo/index.js";
import type { FakeForgejo } from "../test/fakes/forgejo/index.js";
import { createFakeNsc } from "../test/fakes/nsc/index.js";
import type { FakeNsc } from "../test/fakes/nsc/index.js";
import { tempDir } from "../test/helpers/tmp.js";
import { median } from "./measure.js";

const TOKEN = "bench-hot-path-api-token-0123456789";
const LABELS = ["namespace-profile-linux-medium"];

/** Epoch milliseconds with sub-millisecond resolution, comparable with `date +%s%N`. */
const epochMs = () => performance.timeOrigin + performance.now();

/**
 * The fake nsc behind a shell wrapper that stamps each `nsc run` the moment its process starts
 * (before the fake, a Node script, spends ~100 ms starting up): "run started" is the same instant
 * for the dispatcher and for the bare server.
 */
function stampingNsc(dir: string, nsc: FakeNsc): { bin: string; stamps: () => number[] } {
  const stampFile = join(dir, "run-stamps");
  const bin = join(dir, "nsc-stamped");
  writeFileSync(
    bin,
    `#!/bin/sh
if [ "$1" = run ]; then date +%s%N >> '${stampFile}'; fi
exec '${nsc.bin}' "$@"
`,
  );
  chmodSync(bin, 0o755);
  return {
    bin,
    stamps: () =>
      existsSync(stampFile)
        ? readFileSync(stampFile, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((ns) => Number(BigInt(ns) / 1000n) / 1000)
        : [],
  };
}

interface Side {
  url: string;
  /** POST one runner; resolves on the answer (202). */
  dispatch(i: number): Promise<void>;
  /** Runners whose `nsc run` has returned. */
  done(): Promise<number>;
  close(): Promise<void>;
  storeTime?: Map<string, { calls: number; ms: number }>;
}

/**
 * The bare server: Node's http, no store, no scheduler. Per POST it answers 202 at once, then
 * registers one ephemeral runner with the fake Forgejo (the call the dispatcher makes on Forgejo
 * 15) and spawns `nsc run`, at most `maxParallel` at a time.
 */
async function bareServer(forgejo: FakeForgejo, nscBin: string, maxParallel: number): Promise<Side> {
  let running = 0;
  let finished = 0;
  const queue: string[] = [];
  const pump = () => {
    while (running < maxParallel && queue.length > 0) {
      const name = queue.shift() as string;
      running++;
      void launch(name).finally(() => {
        running--;
        finished++;
        pump();
      });
    }
  };
  const launch = async (name: string) => {
    const res = await fetch(`${forgejo.url}/api/v1/admin/actions/runners`, {
      method: "POST",
      headers: { authorization: `token ${FAKE_ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name, ephemeral: true }),
    });
    const reg = (await res.json()) as { token?: string };
    if (res.status !== 201 || !reg.token) throw new Error(`bare server: registering ${name} answered ${res.status}`);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        nscBin,
        [
          "run",
          "-o",
          "json",
          "--image",
          "ghcr.io/catthehacker/ubuntu:act-24.04",
          "--name",
          name,
          "--duration",
          "30m",
          "--label",
          `forgejo-nsc.runner=${name}`,
        ],
        {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, FORGEJO_RUNNER_TOKEN: reg.token },
        },
      );
      child.stdout.resume();
      child.stderr.resume();
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`bare server: nsc run for ${name} exited ${code}`))));
    });
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      const name = `bare-${Math.random().toString(36).slice(2, 12)}`;
      res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ runners: [{ name, state: "pending" }] }));
      queue.push(name);
      pump();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    dispatch: (i) => post(`${url}/api/v1/dispatch`, i),
    done: async () => finished,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function post(url: string, i: number): Promise<void> {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", "idempotency-key": `hot-path-${i}-${Math.random()}` },
    body: JSON.stringify({ labels: LABELS, ttl: "30m" }),
  });
  if (res.status !== 202) throw new Error(`dispatch answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

/** The real dispatcher in this process, as `bench/world.ts` builds it, with its timers on. */
/** Wraps the store's methods to add up the time spent in each (calls and ms), for "where the time goes". */
function timeStore(store: Store): Map<string, { calls: number; ms: number }> {
  const spent = new Map<string, { calls: number; ms: number }>();
  const target = store as unknown as Record<string, unknown>;
  for (const name of ["createDispatch", "getDispatchByKey", "getRunner", "listRunners", "countRunners", "transition", "update"]) {
    const original = target[name];
    if (typeof original !== "function") continue;
    target[name] = async (...args: unknown[]) => {
      const t = performance.now();
      try {
        return await (original as (...a: unknown[]) => Promise<unknown>).apply(store, args);
      } finally {
        const e = spent.get(name) ?? { calls: 0, ms: 0 };
        e.calls++;
        e.ms += performance.now() - t;
        spent.set(name, e);
      }
    };
  }
  return spent;
}

async function realDispatcher(
  dir: string,
  forgejo: FakeForgejo,
  nscBin: string,
  maxParallel: number,
): Promise<Side & { store: Store; storeTime: Map<string, { calls: number; ms: number }> }> {
  const config = parseConfig(
    dispatcherConfigSchema,
    `listen: 127.0.0.1:0
forgejo: { base_url: "${forgejo.url}", token: "${FAKE_ADMIN_TOKEN}" }
namespace: { nsc_binary: "${nscBin}", workdir: /tmp/forgejo-runner, max_parallel: ${maxParallel}, max_runners: 100000 }
dispatcher: { state_path: "${join(dir, "dispatcher.db")}", max_queue: 100000 }
auth: { tokens: ["${TOKEN}"] }
http: { rate_limit_per_minute: 0 }
log: { level: info }
`,
    "hot-path benchmark dispatcher config",
    {},
  );
  const dest = pino.destination({ dest: join(dir, "dispatcher.log"), sync: false, mkdir: true });
  const deps = await buildDispatcherDeps(config, createLogger("info", "forgejo-nsc-dispatcher", dest));
  const storeTime = timeStore(deps.store);
  const d = await createDispatcher({ ...deps, timers: false });
  await d.start();
  const url = await d.app.listen({ host: "127.0.0.1", port: 0 });
  return {
    url,
    store: deps.store,
    storeTime,
    dispatch: (i) => post(`${url}/api/v1/dispatch`, i),
    done: () => deps.store.countRunners(["running"]),
    close: async () => {
      await d.stop();
      await deps.store.close();
      dest.flushSync();
    },
  };
}

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10 * 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`hot-path benchmark: ${what} did not happen within 10 minutes`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface SideResult {
  /** From sending the POST until its `nsc run` process started, one dispatch at a time (ms). */
  toRunMs: { median: number; p90: number; all: number[] };
  /** POST answered (202), one at a time. */
  postMs: number;
  /** 100-runner burst: until the last `nsc run` started, and until every one had returned. */
  burst: { lastRunStartedMs: number; allDoneMs: number };
  /** Per sequential dispatch: store calls and the time spent in them, by method (dispatcher only). */
  store: Record<string, { calls: number; ms: number }>;
}

/** Sequential dispatches (each waits for the previous runner to be up), then one burst. */
async function measureSide(
  side: Side,
  stamps: () => number[],
  opts: { sequential: number; burst: number; clients: number },
): Promise<SideResult> {
  const toRun: number[] = [];
  const posts: number[] = [];
  let finished = await side.done();
  let storeAt: Map<string, { calls: number; ms: number }> | undefined;
  // Warm-up: module paths, the first SQLite statements, the first Forgejo connection.
  for (let i = 0; i < 3 + opts.sequential; i++) {
    const before = stamps().length;
    const sent = epochMs();
    await side.dispatch(i);
    const answered = epochMs();
    await until(() => stamps().length > before, "an nsc run start");
    const started = stamps()[before] as number;
    await until(async () => (await side.done()) > finished, "a runner up");
    finished = await side.done();
    if (i >= 3) {
      toRun.push(started - sent);
      posts.push(answered - sent);
    }
    if (i === 2 && side.storeTime) storeAt = new Map([...side.storeTime].map(([k, v]) => [k, { ...v }]));
  }
  // Store calls per sequential dispatch (the done() polls count too: countRunners is the benchmark's).
  const store: Record<string, { calls: number; ms: number }> = {};
  for (const [k, v] of side.storeTime ?? []) {
    const b = storeAt?.get(k) ?? { calls: 0, ms: 0 };
    store[k] = { calls: (v.calls - b.calls) / opts.sequential, ms: (v.ms - b.ms) / opts.sequential };
  }
  const before = stamps().length;
  const t0 = epochMs();
  let next = 0;
  const client = async () => {
    while (next < opts.burst) await side.dispatch(1000 + next++);
  };
  await Promise.all(Array.from({ length: opts.clients }, client));
  await until(() => stamps().length >= before + opts.burst, "the burst's nsc runs starting");
  const lastRunStartedMs = (stamps()[before + opts.burst - 1] as number) - t0;
  await until(async () => (await side.done()) >= finished + opts.burst, "the burst's runners up");
  const allDoneMs = epochMs() - t0;
  const sorted = [...toRun].sort((a, b) => a - b);
  return {
    toRunMs: { median: median(toRun), p90: sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)] as number, all: toRun },
    postMs: median(posts),
    burst: { lastRunStartedMs, allDoneMs },
    store,
  };
}

export interface HotPathResult {
  maxParallel: number;
  sequential: number;
  burst: number;
  /** Both rounds of each side together (medians over every dispatch, bursts averaged). */
  bare: SideResult;
  dispatcher: SideResult;
  rounds: { bare: SideResult[]; dispatcher: SideResult[] };
}

function combine(a: SideResult, b: SideResult): SideResult {
  const all = [...a.toRunMs.all, ...b.toRunMs.all];
  const sorted = [...all].sort((x, y) => x - y);
  const store: SideResult["store"] = {};
  for (const k of new Set([...Object.keys(a.store), ...Object.keys(b.store)])) {
    const x = a.store[k] ?? { calls: 0, ms: 0 };
    const y = b.store[k] ?? { calls: 0, ms: 0 };
    store[k] = { calls: (x.calls + y.calls) / 2, ms: (x.ms + y.ms) / 2 };
  }
  return {
    toRunMs: { median: median(all), p90: sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)] as number, all },
    postMs: (a.postMs + b.postMs) / 2,
    burst: {
      lastRunStartedMs: (a.burst.lastRunStartedMs + b.burst.lastRunStartedMs) / 2,
      allDoneMs: (a.burst.allDoneMs + b.burst.allDoneMs) / 2,
    },
    store,
  };
}

/**
 * Issue 13 item 4: the dispatcher's hot path against a bare server in the same run, with the same
 * fake Forgejo and the same fake nsc: the time a dispatch takes from the POST until `nsc run`
 * starts, and the wall time of a burst.
 */
export async function hotPath(opts: {
  sequential: number;
  burst: number;
  maxParallel: number;
  clients: number;
  createDelayMs: number;
}): Promise<HotPathResult> {
  const tmp = tempDir("forgejo-nsc-hot-path-");
  const forgejo = await startFakeForgejo();
  const nsc = createFakeNsc(join(tmp.dir, "nsc"), { createDelayMs: opts.createDelayMs });
  // NscCli passes this process's environment on to nsc: the fake finds its state through it.
  Object.assign(process.env, nsc.env);
  const stamped = stampingNsc(tmp.dir, nsc);
  try {
    const m = { sequential: opts.sequential, burst: opts.burst, clients: opts.clients };
    const runBare = async () => {
      const bare = await bareServer(forgejo, stamped.bin, opts.maxParallel);
      return measureSide(bare, stamped.stamps, m).finally(() => bare.close());
    };
    const runReal = async (i: number) => {
      const real = await realDispatcher(join(tmp.dir, `d${i}`), forgejo, stamped.bin, opts.maxParallel);
      return measureSide(real, stamped.stamps, m).finally(() => real.close());
    };
    // Bare, dispatcher, dispatcher, bare: drift in the machine's load and the fake nsc's growing
    // state file weigh on both sides alike.
    const bare1 = await runBare();
    const real1 = await runReal(1);
    const real2 = await runReal(2);
    const bare2 = await runBare();
    return {
      maxParallel: opts.maxParallel,
      sequential: opts.sequential,
      burst: opts.burst,
      bare: combine(bare1, bare2),
      dispatcher: combine(real1, real2),
      rounds: { bare: [bare1, bare2], dispatcher: [real1, real2] },
    };
  } finally {
    await forgejo.close();
    tmp.cleanup();
  }
}
