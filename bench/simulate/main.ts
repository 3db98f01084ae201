import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { chartSvg } from "./chart.js";
import { standardDeployment } from "./deployment.js";
import { POLICIES, policyNamed } from "./policies/index.js";
import { simulate } from "./run.js";
import type { Row } from "./table.js";
import { markdownTable } from "./table.js";
import { TRACES } from "./traces.js";

const USAGE = `usage: npm run simulate -- [--seed N] [--traces steady,bursts,nightly,mixed-day] [--svg FILE | --no-svg] [--json]`;
const LOSSES = [0, 0.05, 0.5];
const POLLS = ["5s", "10s", "30s", "60s"];
const CHART_LOSS = 0.05;

function options() {
  try {
    const { values } = parseArgs({
      options: {
        seed: { type: "string", default: "1" },
        traces: { type: "string", default: TRACES.map((t) => t.name).join(",") },
        svg: { type: "string", default: "docs/simulation.svg" },
        "no-svg": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    const seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got "${values.seed}"`);
    const traces = values.traces.split(",").map((name) => {
      const t = TRACES.find((x) => x.name === name.trim());
      if (!t) throw new Error(`--traces: unknown trace "${name}"; choose from ${TRACES.map((x) => x.name).join(", ")}`);
      return t;
    });
    return { seed, traces, svg: values["no-svg"] ? undefined : values.svg, json: values.json };
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    process.exit(2);
  }
}

const opts = options();
// With --json, stdout carries the JSON document alone; progress goes to stderr.
const say = (line: string) => (opts.json ? console.error(line) : console.log(line));
const comparison: Row[] = [];
const pollSweep: Row[] = [];
const started = performance.now();

for (const { name, make } of opts.traces) {
  const trace = make(opts.seed);
  for (const loss of LOSSES) {
    for (const p of POLICIES) {
      const figures = await simulate({ trace, deployment: standardDeployment(), policy: p.create, loss, seed: opts.seed });
      comparison.push({
        trace: name,
        loss,
        poll: p.name === "original" ? "30s" : p.name === "garm-like" ? "—" : "10s",
        policy: p.name,
        figures,
      });
    }
  }
  for (const poll of POLLS) {
    const figures = await simulate({
      trace,
      deployment: standardDeployment(poll),
      policy: policyNamed("today").create,
      loss: 0.5,
      seed: opts.seed,
    });
    pollSweep.push({ trace: name, loss: 0.5, poll, policy: "today", figures });
  }
}

if (opts.json) {
  console.log(JSON.stringify({ seed: opts.seed, comparison, pollSweep }, null, 2));
} else {
  say(`Policies side by side (seed ${opts.seed}; every figure of a row from one run):\n`);
  say(markdownTable(comparison));
  say(`\nToday's policy at 50% webhook loss, by poll_interval:\n`);
  say(markdownTable(pollSweep));
}
if (opts.svg) {
  const rows = comparison.filter((r) => r.loss === CHART_LOSS);
  writeFileSync(
    opts.svg,
    chartSvg(rows, `Queue wait p95 against idle instance-minutes, webhook loss ${CHART_LOSS * 100}%, seed ${opts.seed} (npm run simulate)`),
  );
  say(`\nchart: ${opts.svg}`);
}
say(`${comparison.length + pollSweep.length} runs in ${((performance.now() - started) / 1000).toFixed(1)} s`);
