/**
 * `npm run bench:hot-path` (issue 13 item 4): the dispatcher's hot path against a bare Node server
 * in the same run — per dispatch, the time from the POST until `nsc run` started, and the wall time
 * of a 100-runner burst. Plain numbers, no pass/fail.
 *
 *   npm run bench:hot-path -- [--sequential 30] [--burst 100] [--parallel 16] [--clients 8] [--launch-delay 0ms] [--json]
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../src/config/duration.js";
import { hotPath } from "./hot-path.js";
import type { SideResult } from "./hot-path.js";
import { fmt, load, machine } from "./measure.js";

const USAGE =
  "usage: tsx bench/hot-path-main.ts [--sequential N] [--burst N] [--parallel N] [--clients N] [--launch-delay DURATION] [--json]";
const out = (line = "") => process.stdout.write(`${line}\n`);

function count(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number of at least 1, got ${JSON.stringify(v)}\n${USAGE}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      sequential: { type: "string" },
      burst: { type: "string" },
      parallel: { type: "string" },
      clients: { type: "string" },
      "launch-delay": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const createDelayMs = values["launch-delay"] === undefined ? 0 : parseDuration(values["launch-delay"]);
  if (createDelayMs === undefined) throw new Error(`--launch-delay must be a duration such as 0ms or 1s\n${USAGE}`);
  const opts = {
    sequential: count("sequential", values.sequential, 30),
    burst: count("burst", values.burst, 100),
    maxParallel: count("parallel", values.parallel, 16),
    clients: count("clients", values.clients, 8),
    createDelayMs,
  };
  const progress = values.json ? (line = "") => process.stderr.write(`${line}\n`) : out;
  progress(`forgejo-nsc hot-path benchmark — ${machine()}; starts at ${load()}`);
  const r = await hotPath(opts);
  if (values.json) {
    out(JSON.stringify({ machine: machine(), ...r }, null, 2));
    return 0;
  }
  const row = (name: string, s: SideResult) =>
    `  ${name.padEnd(10)}   ${fmt(s.toRunMs.median, 1).padStart(13)}   ${fmt(s.toRunMs.p90, 1).padStart(10)}   ${fmt(s.postMs, 1).padStart(12)}   ${fmt(s.burst.lastRunStartedMs).padStart(22)}   ${fmt(s.burst.allDoneMs).padStart(17)}`;
  out(
    `max_parallel ${r.maxParallel} on both; ${r.sequential} dispatches one at a time, then a burst of ${r.burst} from ${opts.clients} client connections; fake nsc run waits ${createDelayMs} ms`,
  );
  out("  server       POST→run median   POST→run p90   POST answered   burst: last run started ms   burst: all up ms");
  out(row("bare 1", r.rounds.bare[0]!));
  out(row("dispatch 1", r.rounds.dispatcher[0]!));
  out(row("dispatch 2", r.rounds.dispatcher[1]!));
  out(row("bare 2", r.rounds.bare[1]!));
  out(row("bare", r.bare));
  out(row("dispatcher", r.dispatcher));
  out();
  out(`added per dispatch (median): ${fmt(r.dispatcher.toRunMs.median - r.bare.toRunMs.median, 1)} ms (target ≤ 5 ms)`);
  out(
    `burst, last run started: ${fmt(r.dispatcher.burst.lastRunStartedMs / r.bare.burst.lastRunStartedMs, 2)}× the bare server; all up: ${fmt(r.dispatcher.burst.allDoneMs / r.bare.burst.allDoneMs, 2)}× (target ≤ 1.05×)`,
  );
  const store = Object.entries(r.dispatcher.store)
    .filter(([k]) => k !== "countRunners")
    .map(([k, v]) => `${k} ${fmt(v.calls, 1)}× ${fmt(v.ms, 1)} ms`)
    .join(", ");
  out(`dispatcher store calls per dispatch (one at a time): ${store}`);
  out(`ends at ${load()}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`hot-path benchmark failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
