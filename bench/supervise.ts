/**
 * `npm run bench`: how the dispatcher's supervision scales. Supervises 2,000 running runners (real
 * Supervisor, SQLite store, NscCli and LinuxLauncher against the fake nsc) and prints per tick the
 * wall time, the CPU time of the dispatcher and of the nsc processes it spawned, and the nsc
 * invocations; then 100 instances end at once; then the peak RSS; then launch throughput through
 * the HTTP API with namespace.max_parallel 4 and 16. Plain numbers, no pass/fail.
 *
 * Between the two, the real daemon runs as its own process on the same fleet so its peak RSS and
 * CPU per tick can be read from /proc (Linux).
 *
 *   npm run bench -- --runners 2000 --ticks 10 --churn 100 --process-ticks 10 --interval 1s \
 *     --dispatches 200 --launch-delay 1000ms --parallel 4,16 [--store postgres://…] [--json]
 *
 * --store: the records in that PostgreSQL database (a fresh schema, dropped afterwards) instead of
 * SQLite, to compare the two (docs/benchmarks.md).
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../src/config/duration.js";
import { dispatcherProcess } from "./dispatcher-process.js";
import type { ProcessResult } from "./dispatcher-process.js";
import { launchThroughput } from "./launch-throughput.js";
import type { LaunchResult } from "./launch-throughput.js";
import { fmt, load, machine, max, median } from "./measure.js";
import { supervision } from "./supervision.js";
import type { SupervisionResult, TickRow } from "./supervision.js";

const USAGE =
  "usage: tsx bench/supervise.ts [--runners N] [--ticks N] [--churn N] [--process-ticks N] [--interval DURATION] [--entry dist/src/bin/dispatcher.js] [--dispatches N] [--launch-delay DURATION] [--parallel 4,16] [--store postgres://…] [--json]";

function positive(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got ${JSON.stringify(v)}\n${USAGE}`);
  return n;
}

const out = (line = "") => process.stdout.write(`${line}\n`);

function tickTable(rows: TickRow[]): void {
  out("  (dispatcher cpu: this process, which also serves the fake Forgejo; nsc cpu: the nsc processes it spawned)");
  out("  tick   wall ms   dispatcher cpu ms   nsc cpu ms   forgejo calls   nsc calls");
  for (const r of rows) {
    const calls =
      Object.entries(r.nscCalls)
        .map(([k, v]) => `${v} ${k}`)
        .join(", ") || "none";
    out(
      `  ${String(r.tick).padStart(4)}   ${fmt(r.wallMs).padStart(7)}   ${fmt(r.cpuMs).padStart(17)}   ${fmt(r.childCpuMs).padStart(10)}   ${String(r.forgejoCalls).padStart(13)}   ${calls}${r.finished ? ` (finished ${r.finished})` : ""}`,
    );
  }
}

function printSupervision(s: SupervisionResult): void {
  out(`supervision: ${s.runners} running runners, ${s.runners} live instances (fake nsc state file ${fmt(s.stateFileMiB, 1)} MiB)`);
  out(
    `  one bare fake \`nsc list --all -o json\`: ${fmt(s.bareListMs.empty)} ms with 0 instances, ${fmt(s.bareListMs.full)} ms with ${s.runners}`,
  );
  out();
  out(`steady state, ${s.steady.length} ticks, nothing changing:`);
  tickTable(s.steady);
  const calls = s.steady.map((r) => Object.values(r.nscCalls).reduce((a, b) => a + b, 0));
  out(
    `  median: wall ${fmt(median(s.steady.map((r) => r.wallMs)))} ms, dispatcher cpu ${fmt(median(s.steady.map((r) => r.cpuMs)))} ms, nsc cpu ${fmt(median(s.steady.map((r) => r.childCpuMs)))} ms, nsc calls ${fmt(median(calls))}`,
  );
  out(
    `  max:    wall ${fmt(max(s.steady.map((r) => r.wallMs)))} ms, dispatcher cpu ${fmt(max(s.steady.map((r) => r.cpuMs)))} ms, nsc cpu ${fmt(max(s.steady.map((r) => r.childCpuMs)))} ms, nsc calls ${fmt(max(calls))}`,
  );
  out();
  out(`churn: ${s.churn.ended} of ${s.runners} instances end at once (absent on two looks in a row, then finished):`);
  tickTable(s.churn.ticks);
  out();
  out(
    `peak RSS of the benchmark process (dispatcher core + the fake Forgejo it queries): ${fmt(s.peakRssMiB)} MiB (RSS before the fleet was created: ${fmt(s.rssBeforeFleetMiB)} MiB)`,
  );
}

function printProcess(p: ProcessResult): void {
  out(
    `the dispatcher as its own process (${p.entry}), ${p.runners} running runners, supervise_interval ${p.intervalMs} ms, ${p.ticks} ticks sampled (counted by its own supervision histogram):`,
  );
  const calls = Object.entries(p.nscCalls)
    .map(([k, v]) => `${fmt(v / p.ticks, 1)} ${k}`)
    .join(", ");
  out(
    `  peak RSS (VmHWM) ${fmt(p.peakRssMiB)} MiB, RSS at the end ${fmt(p.rssMiB)} MiB, cpu ${fmt(p.cpuMsPerTick)} ms per tick, nsc calls per tick ${fmt(p.nscCallsPerTick, 1)} (${calls}), Forgejo requests per tick ${fmt(p.forgejoCallsPerTick, 1)}`,
  );
}

function printLaunches(rows: LaunchResult[], delayMs: number): void {
  out(
    `launch throughput: dispatches through POST /api/v1/dispatch, each fake \`nsc run\` waiting ${delayMs} ms after creating its instance`,
  );
  out(
    "  max_parallel   dispatches   all accepted ms   POST ms median/max   all running ms   launches/s   nsc run calls   peak in flight   dispatcher cpu ms   nsc cpu ms",
  );
  for (const r of rows) {
    out(
      `  ${String(r.maxParallel).padStart(12)}   ${String(r.dispatches).padStart(10)}   ${fmt(r.acceptMs).padStart(15)}   ${`${fmt(r.postMs.median)}/${fmt(r.postMs.max)}`.padStart(18)}   ${fmt(r.allRunningMs).padStart(14)}   ${fmt(r.launchesPerSecond, 2).padStart(10)}   ${String(r.runCalls).padStart(13)}   ${String(r.peakInFlight).padStart(14)}   ${fmt(r.cpuMs).padStart(17)}   ${fmt(r.childCpuMs).padStart(10)}`,
    );
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runners: { type: "string" },
      ticks: { type: "string" },
      churn: { type: "string" },
      dispatches: { type: "string" },
      "launch-delay": { type: "string" },
      parallel: { type: "string" },
      "process-ticks": { type: "string" },
      interval: { type: "string" },
      entry: { type: "string" },
      store: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const runners = positive("runners", values.runners, 2000);
  const ticks = positive("ticks", values.ticks, 10);
  const churn = Math.min(runners, positive("churn", values.churn, 100));
  const dispatches = positive("dispatches", values.dispatches, 200);
  const launchDelayMs = values["launch-delay"] === undefined ? 1000 : parseDuration(values["launch-delay"]);
  if (launchDelayMs === undefined) throw new Error(`--launch-delay must be a duration such as 1s or 500ms\n${USAGE}`);
  const processTicks = positive("process-ticks", values["process-ticks"], 10);
  const intervalMs = values.interval === undefined ? 1000 : parseDuration(values.interval);
  if (intervalMs === undefined || intervalMs <= 0) throw new Error(`--interval must be a duration such as 1s\n${USAGE}`);
  const parallel = (values.parallel ?? "4,16")
    .split(",")
    .map((p) => positive("parallel", p.trim(), 4))
    .filter((p) => p > 0);
  if (values.store !== undefined) {
    if (!/^postgres(ql)?:\/\//i.test(values.store)) throw new Error(`--store must be a postgres:// URL\n${USAGE}`);
    // Read by bench/bench-store.ts wherever a benchmark dispatcher opens its records.
    process.env.FORGEJO_NSC_BENCH_STORE = values.store;
  }

  // With --json, stdout carries the JSON document alone (for jq); progress goes to stderr.
  const progress = values.json ? (line = "") => process.stderr.write(`${line}\n`) : out;
  progress(`forgejo-nsc dispatcher benchmark — ${machine()}`);
  progress(`supervision phase starts at ${load()}`);
  progress();
  const sup = await supervision({ runners, ticks, churn });
  if (!values.json) printSupervision(sup);
  let proc: ProcessResult | undefined;
  if (processTicks > 0 && process.platform === "linux") {
    progress(`\nprocess phase starts at ${load()}`);
    proc = await dispatcherProcess({ runners, ticks: processTicks, intervalMs, entry: values.entry });
    if (!values.json) printProcess(proc);
  }
  const launches: LaunchResult[] = [];
  if (dispatches > 0) {
    for (const p of parallel) {
      progress(`launch phase max_parallel=${p} starts at ${load()}`);
      launches.push(await launchThroughput({ maxParallel: p, dispatches, launchDelayMs }));
    }
    if (!values.json) {
      out();
      printLaunches(launches, launchDelayMs);
    }
  }
  if (values.json) out(JSON.stringify({ machine: machine(), supervision: sup, process: proc, launches }, null, 2));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`benchmark failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
