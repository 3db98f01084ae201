import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { CallLog } from "./call-log.js";
import { createFleet, finishJobs } from "./fleet.js";
import { measure, median, peakRssMiB, rssMiB } from "./measure.js";
import type { Sample } from "./measure.js";
import { startBenchWorld } from "./world.js";
import type { BenchWorld } from "./world.js";

export interface TickRow extends Sample {
  tick: number;
  /** nsc invocations the tick made, by command. */
  nscCalls: Record<string, number>;
  /** Requests the tick sent to (the fake) Forgejo. */
  forgejoCalls: number;
  observed: number | "error" | undefined;
  finished: number;
}

export interface SupervisionResult {
  runners: number;
  stateFileMiB: number;
  /** One `nsc list --all -o json --label …` of the fake, run alone: wall ms, median of 3. */
  bareListMs: { empty: number; full: number };
  rssBeforeFleetMiB: number;
  steady: TickRow[];
  churn: { ended: number; ticks: TickRow[] };
  peakRssMiB: number;
}

async function tick(w: BenchWorld, log: CallLog, n: number): Promise<TickRow> {
  log.since();
  const forgejoBefore = w.forgejo.calls.length;
  const { value: report, sample } = await measure(() => w.dispatcher.supervisor.tick());
  return {
    tick: n,
    ...sample,
    nscCalls: log.since(),
    forgejoCalls: w.forgejo.calls.length - forgejoBefore,
    observed: report.observed.linux,
    finished: report.finished.length,
  };
}

/** Wall time of the fake `nsc list` on its own, so its share of a tick can be told apart. */
function bareList(w: BenchWorld): number {
  const args = [
    "list",
    "--all",
    "-o",
    "json",
    "--label",
    `forgejo-nsc.owner=${w.config.dispatcher.id}`,
    "--label",
    "forgejo-nsc.platform=linux",
  ];
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    execFileSync(w.nsc.bin, args, { env: { ...process.env, ...w.nsc.env }, maxBuffer: 256 * 1024 * 1024 });
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * `runners` running runners with live instances, supervised by the real Supervisor for `ticks`
 * ticks with nothing changing, then `churn` of the instances end at once and the ticks that notice
 * and finish them are measured too.
 */
export async function supervision(opts: { runners: number; ticks: number; churn: number }): Promise<SupervisionResult> {
  const w = await startBenchWorld();
  try {
    const empty = bareList(w);
    const rssBeforeFleetMiB = rssMiB();
    const fleet = await createFleet(w.deps.store, w.nsc.statePath, opts.runners, {
      owner: w.config.dispatcher.id,
      prefix: w.config.runner.name_prefix,
      ttlMs: 6 * 3_600_000,
      forgejo: w.forgejo,
    });
    const full = bareList(w);
    await w.dispatcher.start();
    const log = new CallLog(w.nsc.logPath);

    const steady: TickRow[] = [];
    for (let i = 1; i <= opts.ticks; i++) {
      const row = await tick(w, log, i);
      if (row.observed !== opts.runners || row.finished !== 0) {
        throw new Error(
          `tick ${i} observed ${row.observed} instances and finished ${row.finished} runners; expected ${opts.runners} and 0 (see ${w.logFile})`,
        );
      }
      steady.push(row);
    }

    const ended = fleet.names.slice(0, opts.churn);
    finishJobs(w.forgejo, w.nsc.statePath, fleet, ended);
    const churnTicks: TickRow[] = [];
    let finished = 0;
    for (let i = 1; finished < ended.length && i <= 10; i++) {
      const row = await tick(w, log, opts.ticks + i);
      finished += row.finished;
      churnTicks.push(row);
    }
    const done = await w.deps.store.countRunners(["done"]);
    if (done !== ended.length)
      throw new Error(`${done} runners are done after the churn ticks; expected ${ended.length} (see ${w.logFile})`);

    return {
      runners: opts.runners,
      stateFileMiB: statSync(w.nsc.statePath).size / 1024 / 1024,
      bareListMs: { empty, full },
      rssBeforeFleetMiB,
      steady,
      churn: { ended: ended.length, ticks: churnTicks },
      peakRssMiB: peakRssMiB(),
    };
  } finally {
    await w.close();
  }
}
