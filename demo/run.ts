/**
 * `npm run demo`: the main job end to end on embedded defaults, with no Forgejo and no Namespace
 * account. Starts a fake Forgejo 15, a fake `nsc`, the runner simulator (which runs the real
 * bootstrap scripts), the dispatcher and the autoscaler on free loopback ports; queues jobs and
 * prints each job's path: waiting → runner launched → running → done → instance destroyed.
 */
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { createAutoscaler } from "../src/autoscaler/app.js";
import { buildAutoscalerDeps } from "../src/autoscaler/wiring.js";
import { autoscalerConfigSchema } from "../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../src/config/dispatcher-schema.js";
import { parseConfig } from "../src/config/load.js";
import { createDispatcher } from "../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../src/dispatcher/wiring.js";
import { createLogger } from "../src/http/logger.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../test/fakes/forgejo/index.js";
import { createFakeNsc } from "../test/fakes/nsc/index.js";
import { liveInstances, startRunnerSimulator } from "../test/fakes/runner-sim.js";
import { tempDir } from "../test/helpers/tmp.js";

const DEADLINE_MS = 90_000;
const API_TOKEN = "demo-dispatcher-token-0123456789abcdef";
const t0 = Date.now();
const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
const say = (line: string) => process.stdout.write(`${stamp()}  ${line}\n`);

async function main(): Promise<number> {
  const tmp = tempDir("forgejo-nsc-demo-");
  const logFile = join(tmp.dir, "daemons.log");
  const logStream = createWriteStream(logFile);
  const forgejo = await startFakeForgejo({ repos: [{ owner: "demo", name: "app" }] });
  const nsc = createFakeNsc(join(tmp.dir, "nsc"));
  Object.assign(process.env, nsc.env);
  const sim = startRunnerSimulator({ nsc, forgejo, dir: join(tmp.dir, "instances"), jobMs: 1500, intervalMs: 100 });

  const dispatcherConfig = parseConfig(
    dispatcherConfigSchema,
    `listen: 127.0.0.1:0
forgejo: { base_url: "${forgejo.url}", token: "${FAKE_ADMIN_TOKEN}" }
namespace: { nsc_binary: "${nsc.bin}", workdir: "${join(tmp.dir, "runner-work")}", max_parallel: 4 }
dispatcher: { state_path: "${join(tmp.dir, "dispatcher.db")}", supervise_interval: 500ms }
auth: { tokens: ["${API_TOKEN}"] }
log: { level: debug }
`,
    "demo dispatcher config",
    {},
  );
  const logger = createLogger("debug", "forgejo-nsc", logStream);
  const deps = await buildDispatcherDeps(dispatcherConfig, logger.child({ daemon: "dispatcher" }));
  const dispatcher = await createDispatcher(deps);
  await dispatcher.start();
  const dispatcherUrl = await dispatcher.app.listen({ host: "127.0.0.1", port: 0 });

  const autoscalerConfig = parseConfig(
    autoscalerConfigSchema,
    `listen: 127.0.0.1:0
dispatcher: { url: "${dispatcherUrl}", token: "${API_TOKEN}" }
instances:
  - name: demo
    forgejo: { base_url: "${forgejo.url}", token: "${FAKE_ADMIN_TOKEN}" }
    scope: { level: repository, owner: demo, name: app }
    poll_interval: 1s
    targets:
      - name: linux-medium
        labels: [namespace-profile-linux-medium]
        ttl: 10m
`,
    "demo autoscaler config",
    {},
  );
  const autoscaler = await createAutoscaler(buildAutoscalerDeps(autoscalerConfig, logger.child({ daemon: "autoscaler" })));
  const autoscalerUrl = await autoscaler.app.listen({ host: "127.0.0.1", port: 0 });
  autoscaler.start();

  say(`fake Forgejo ${forgejo.url} (v15), fake nsc ${nsc.bin}`);
  say(`dispatcher ${dispatcherUrl}, autoscaler ${autoscalerUrl}; daemon logs: ${logFile}`);

  const jobs = [
    forgejo.addJob({ repo: "demo/app", runs_on: ["namespace-profile-linux-medium"], name: "build" }),
    forgejo.addJob({ repo: "demo/app", runs_on: ["namespace-profile-linux-medium"], name: "test" }),
    forgejo.addJob({ repo: "demo/app", runs_on: ["namespace-profile-linux-medium"], name: "lint" }),
  ];
  const stray = forgejo.addJob({ repo: "demo/app", runs_on: ["gpu-a100"], name: "train" });
  for (const j of [...jobs, stray]) say(`job ${j.id} "${j.name}" waiting  (runs-on: ${j.runsOn.join(", ")})`);

  const seen = new Map<number, Set<string>>(jobs.map((j) => [j.id, new Set<string>()]));
  const mark = (job: number, step: string, line: string) => {
    const s = seen.get(job);
    if (!s || s.has(step)) return;
    s.add(step);
    say(`job ${job} ${line}`);
  };

  let ok = false;
  while (Date.now() - t0 < DEADLINE_MS) {
    for (const j of jobs) {
      const [r] = await deps.store.listRunners({ jobId: j.id });
      if (r && (r.state === "running" || r.state === "finishing" || r.state === "done") && r.instanceId) {
        mark(j.id, "launched", `runner launched: ${r.name} on instance ${r.instanceId} (pinned to handle ${j.handle?.slice(0, 8)}…)`);
      }
      const took = sim.events.find((e) => e.type === "took_job" && e.job === j.id);
      if (took) mark(j.id, "running", `running on ${took.runner}`);
      if (forgejo.job(j.id)?.status === "success") mark(j.id, "done", "done: success");
      if (r?.state === "done" && r.instanceId && !liveInstances(nsc).some((i) => i.id === r.instanceId)) {
        mark(j.id, "destroyed", `instance ${r.instanceId} destroyed (${r.reason})`);
      }
    }
    if ([...seen.values()].every((s) => s.has("destroyed"))) {
      ok = true;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const status = (await fetch(`${autoscalerUrl}/api/v1/status`).then((r) => r.json())) as {
    instances: { waiting_jobs: { id: number; reason: string }[] }[];
  };
  const why = status.instances[0]?.waiting_jobs.find((w) => w.id === stray.id)?.reason ?? "not reported";
  say(`job ${stray.id} "train" still waiting, as it should: ${why}`);

  const leaked = liveInstances(nsc);
  say(
    ok
      ? `all ${jobs.length} jobs ran on their own runner; live instances left: ${leaked.length}`
      : `demo did not finish within ${DEADLINE_MS / 1000}s; see ${logFile}`,
  );
  if (process.argv.includes("--serve")) await serve(dispatcherUrl, autoscalerUrl);
  sim.stop();
  await autoscaler.stop();
  await dispatcher.stop();
  await deps.store.close();
  await forgejo.close();
  logStream.end();
  return ok && leaked.length === 0 ? 0 : 1;
}

/** `npm run demo -- --serve`: keep everything running so the README's curl can be tried by hand. */
async function serve(dispatcherUrl: string, autoscalerUrl: string): Promise<void> {
  const body = JSON.stringify({
    count: 1,
    ttl: "2m",
    labels: ["namespace-profile-linux-medium"],
    scope: { level: "repository", owner: "demo", name: "app" },
  });
  process.stdout.write(`
The daemons keep running against the fakes until Ctrl-C. Try (the token is the demo's own):

  curl -X POST ${dispatcherUrl}/api/v1/dispatch -H 'Content-Type: application/json' \\
    -H 'Authorization: Bearer ${API_TOKEN}' -d '${body}'
  curl -H 'Authorization: Bearer ${API_TOKEN}' ${dispatcherUrl}/api/v1/runners
  npm run cli -- status --dispatcher ${dispatcherUrl} --autoscaler ${autoscalerUrl} --token ${API_TOKEN}

A runner dispatched without a job connects to the fake Forgejo and waits for one until its TTL.
`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
