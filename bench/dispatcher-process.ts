import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchStore } from "./bench-store.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../test/fakes/forgejo/index.js";
import { createFakeNsc } from "../test/fakes/nsc/index.js";
import { tempDir } from "../test/helpers/tmp.js";
import { CallLog } from "./call-log.js";
import { createFleet } from "./fleet.js";
import { CLK_TCK } from "./measure.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface ProcessResult {
  /** What ran: src/bin/dispatcher.ts under tsx, or a built entry point. */
  entry: string;
  runners: number;
  /** Ticks the daemon ran in the sampled window (its own supervision histogram count). */
  ticks: number;
  /** VmHWM of the dispatcher process: its peak resident set. */
  peakRssMiB: number;
  /** VmRSS when the sample ended. */
  rssMiB: number;
  /** CPU of the dispatcher process (utime + stime) over the sampled window, per tick (idle time between ticks included). */
  cpuMsPerTick: number;
  nscCallsPerTick: number;
  /** Invocations over the sampled window, by command. */
  nscCalls: Record<string, number>;
  /** Requests to (the fake) Forgejo per tick. */
  forgejoCallsPerTick: number;
  intervalMs: number;
}

/** Polls `check` every 100 ms until it returns something truthy; fails if the dispatcher exits. */
async function until<T>(check: () => T | Promise<T>, child: ChildProcess, logPath: string): Promise<NonNullable<T>> {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (child.exitCode !== null) throw new Error(`the dispatcher exited (${child.exitCode}); see ${logPath}`);
    if (Date.now() > deadline) throw new Error(`the dispatcher did not get there within 10 minutes; see ${logPath}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function procStatus(pid: number): { hwm: number; rss: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { hwm: kb("VmHWM") / 1024, rss: kb("VmRSS") / 1024 };
}

function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[14 - 3]) + Number(f[15 - 3])) * 1000) / CLK_TCK;
}

/**
 * The real daemon (`node --import tsx src/bin/dispatcher.ts`) on a state file holding `runners`
 * running runners, with their instances in the fake nsc, supervising on its own timer. Linux only
 * (/proc). Measures what a process monitor would see: peak RSS, CPU per tick, nsc calls per tick.
 */
export async function dispatcherProcess(opts: {
  runners: number;
  ticks: number;
  intervalMs: number;
  entry?: string | undefined;
}): Promise<ProcessResult> {
  const tmp = tempDir("forgejo-nsc-bench-proc-");
  const forgejo = await startFakeForgejo();
  const nsc = createFakeNsc(join(tmp.dir, "nsc"));
  const where = await benchStore(tmp.dir);
  const store = await where.open();
  await createFleet(store, nsc.statePath, opts.runners, { owner: "default", prefix: "nscloud-", ttlMs: 6 * 3_600_000, forgejo });
  await store.close();
  const configPath = join(tmp.dir, "dispatcher.yaml");
  writeFileSync(
    configPath,
    `listen: 127.0.0.1:0
forgejo: { base_url: "${forgejo.url}", token: "${FAKE_ADMIN_TOKEN}" }
namespace: { nsc_binary: "${nsc.bin}", workdir: /tmp/forgejo-runner, max_runners: 100000 }
dispatcher: { ${where.yaml}, supervise_interval: ${opts.intervalMs}ms }
log: { level: info }
`,
  );
  const logFd = openSync(join(tmp.dir, "dispatcher.log"), "w");
  const env: NodeJS.ProcessEnv = { ...process.env, ...nsc.env };
  delete env.NODE_OPTIONS;
  // A built entry point (tsc output) runs on plain Node, without the TypeScript compiler in memory.
  const argv = opts.entry ? [resolve(opts.entry)] : ["--import", "tsx", join(ROOT, "src/bin/dispatcher.ts")];
  const child = spawn(process.execPath, [...argv, "--config", configPath], { cwd: ROOT, env, stdio: ["ignore", logFd, logFd] });
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  try {
    const pid = child.pid as number;
    const logPath = join(tmp.dir, "dispatcher.log");
    const url = await until(
      () => /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(readFileSync(logPath, "utf8"))?.[1],
      child,
      logPath,
    );
    // Ticks as the dispatcher counts them itself: the supervision histogram's sample count.
    const ticksDone = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return Number(/^forgejo_nsc_supervise_tick_seconds_count(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const log = new CallLog(nsc.logPath);
    // Start-up (module loading, recovery) and the first ticks are not what is measured.
    await until(async () => (await ticksDone()) >= 2, child, logPath);
    log.since();
    const ticks0 = await ticksDone();
    const cpu0 = procCpuMs(pid);
    const forgejo0 = forgejo.calls.length;
    // Let the daemon's own timer run; scraping /metrics only at both ends keeps our load off it.
    await new Promise((r) => setTimeout(r, opts.ticks * opts.intervalMs));
    const ticks = (await ticksDone()) - ticks0;
    const cpu = procCpuMs(pid) - cpu0;
    const forgejoCalls = forgejo.calls.length - forgejo0;
    const calls = log.since();
    if (ticks <= 0) throw new Error(`the dispatcher did not tick in ${opts.ticks * opts.intervalMs} ms; see ${logPath}`);
    const mem = procStatus(pid);
    const total = Object.values(calls).reduce((a, b) => a + b, 0);
    return {
      entry: opts.entry ?? "src/bin/dispatcher.ts (tsx)",
      runners: opts.runners,
      ticks,
      peakRssMiB: mem.hwm,
      rssMiB: mem.rss,
      cpuMsPerTick: cpu / ticks,
      nscCallsPerTick: total / ticks,
      nscCalls: calls,
      forgejoCallsPerTick: forgejoCalls / ticks,
      intervalMs: opts.intervalMs,
    };
  } finally {
    child.kill("SIGTERM");
    await exited;
    await forgejo.close();
    await where.drop();
    tmp.cleanup();
  }
}
