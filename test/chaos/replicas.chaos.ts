import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { caddyBinary } from "../e2e/caddy.js";
import { startProcess } from "../e2e/processes.js";
import type { TestProcess } from "../e2e/processes.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeJob } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import { startRunnerSimulator } from "../fakes/runner-sim.js";
import { freePort } from "../helpers/free-port.js";
import { fetchJson } from "../helpers/fetch-json.js";
import { freshSchema } from "../helpers/pg-schema.js";
import { startPrivatePostgres } from "../helpers/private-postgres.js";
import { recordSecrets } from "../helpers/secrets.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { effectsOutsideTerms, failoverTimes, median, missing, repeated } from "./checks.js";
import type { Effect, Outage, Term } from "./checks.js";
import { caddyEnv, leader, makeReplica, replicasCaddyfile } from "./cluster.js";
import { diagnose } from "./diagnose.js";
import type { Replica } from "./cluster.js";

/**
 * Several replicas for real: 3 dispatcher and 2 autoscaler processes on the real PostgreSQL, behind
 * the real Caddy (deploy/Caddyfile.replicas.example), against the fake Forgejo and the fake nsc
 * executable, with the runner simulator playing the machines. 300 jobs arrive over about a minute;
 * meanwhile the acting dispatcher is SIGKILLed three times and the acting autoscaler once (each
 * restarted), one acting dispatcher is SIGSTOPped past its lease and resumed, and PostgreSQL is
 * restarted. The PostgreSQL is a server of the test's own (test/helpers/private-postgres.ts: initdb
 * into a temporary folder, on a free port), so its restart touches no other test's database. Run by
 * `npm run test:chaos` (vitest.chaos.config.ts) in .ci/run after `npm test`.
 */
const JOBS = Number(process.env.CHAOS_JOBS ?? 300);
const ARRIVAL_MS = Number(process.env.CHAOS_ARRIVAL_MS ?? 60_000);
const LEASE_TTL_MS = 2000;
const LABEL = "namespace-profile-linux-small";
const DIRECT_LABEL = "namespace-profile-linux-direct";
const TOKEN = "chaos-dispatcher-api-token-6e21b97d";
const SCOPE = { level: "repository", owner: "acme", name: "app" } as const;

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const say = (what: string) => process.stdout.write(`chaos +${((Date.now() - t0) / 1000).toFixed(1)}s: ${what}\n`);
const random = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

it("3 dispatchers and 2 autoscalers through kills, a pause and a database restart: every job one runner, nothing leaked, nothing twice", async () => {
  recordSecrets([TOKEN]);
  // A PostgreSQL server of the test's own: restarting it mid-run touches no other test's database.
  const server = await startPrivatePostgres();
  cleanups.push(() => server.stop());
  const db = await freshSchema("chaos", server.url);
  const tmp = tempDir("fnsc-chaos-");
  cleanups.push(() => tmp.cleanup());
  const forgejo = await startFakeForgejo({ repos: [{ owner: "acme", name: "app" }] });
  cleanups.push(() => forgejo.close());
  const nsc = createFakeNsc(join(tmp.dir, "nsc"));
  cleanups.push(() => nsc.destroyAll());
  const sim = startRunnerSimulator({ nsc, forgejo, dir: join(tmp.dir, "sim"), jobMs: 1000 });
  cleanups.push(() => sim.stop());
  const env = { ...process.env, ...nsc.env };

  const sites = { dispatcher: await freePort(), autoscaler: await freePort() };
  const dispatcherUrl = `http://127.0.0.1:${sites.dispatcher}`;
  const dispatchers: Replica[] = [];
  for (const name of ["d1", "d2", "d3"]) {
    dispatchers.push(await makeReplica("dispatcher", name, tmp.dir, dispatcherConfig(name, forgejo, nsc.bin, tmp.dir, db), env));
  }
  const autoscalers: Replica[] = [];
  for (const name of ["a1", "a2"])
    autoscalers.push(await makeReplica("autoscaler", name, tmp.dir, autoscalerConfig(name, forgejo, dispatcherUrl, db), env));
  const all = [...dispatchers, ...autoscalers];
  cleanups.push(() => Promise.all(all.map((r) => r.stop())).then(() => undefined));
  await Promise.all(all.map((r) => r.start()));

  const caddyfile = join(tmp.dir, "Caddyfile");
  writeFileSync(caddyfile, replicasCaddyfile(join(tmp.dir, "caddy-data")));
  const caddy: TestProcess = startProcess("chaos-caddy", caddyBinary(), ["run", "--config", caddyfile, "--adapter", "caddyfile"], {
    cwd: tmp.dir,
    env: { ...process.env, HOME: tmp.dir, ...caddyEnv(sites, dispatchers, autoscalers) },
  });
  cleanups.push(() => caddy.stop().then(() => undefined));
  await waitFor(async () => (await fetch(`${dispatcherUrl}/healthz`).catch(() => undefined))?.ok, {
    timeoutMs: 30_000,
    what: "Caddy to proxy",
  });

  // Arrivals: JOBS jobs spread over ARRIVAL_MS; and direct dispatches (curl through Caddy) whose 202s must all be kept.
  const started = Date.now();
  const jobs: FakeJob[] = [];
  const arrivals = (async () => {
    for (let i = 0; i < JOBS; i++) {
      const due = started + (i * ARRIVAL_MS) / JOBS;
      if (due > Date.now()) await sleep(due - Date.now());
      jobs.push(forgejo.addJob({ repo: "acme/app", runs_on: [LABEL] }));
    }
  })();
  const accepted: string[] = [];
  const direct = (async () => {
    for (let i = 0; i < 12; i++) {
      await sleep(ARRIVAL_MS / 12);
      const res = await fetchJson(`${dispatcherUrl}/api/v1/dispatch`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "idempotency-key": `chaos-direct-${i}` },
        // A label no job asks for: these runners never take a job from the autoscaler's pinned ones; cancelled at the end.
        body: { count: 1, labels: [DIRECT_LABEL], scope: SCOPE, ttl: "10m" },
      }).catch(() => undefined);
      if (res?.status === 202 || res?.status === 200) accepted.push(...(res.body.runners as { name: string }[]).map((r) => r.name));
    }
  })();

  // Chaos, at random moments within the arrival window.
  const outages: Outage[] = [];
  const holderNow = (kind: string) => () => liveHolder(db, kind);
  const holderOf = async (r: Replica) => (await liveHolder(db, r.kind)) ?? "";
  const killLeader = async (group: Replica[]) => {
    const l = await leader(group, holderNow(group[0]!.kind));
    const holder = await holderOf(l);
    const at = Date.now();
    await l.kill();
    outages.push({ holder, at });
    say(`SIGKILL ${l.name} (${holder})`);
    const next = await leader(
      group.filter((r) => r !== l),
      holderNow(l.kind),
      30_000,
    );
    say(`${next.name} leads`);
    await l.start();
  };
  const chaos = [
    { at: random(0.1, 0.25), act: () => killLeader(dispatchers) },
    { at: random(0.3, 0.45), act: () => killLeader(autoscalers) },
    {
      at: random(0.45, 0.55),
      act: async () => {
        const l = await leader(dispatchers, holderNow("dispatcher"));
        const holder = await holderOf(l);
        const at = Date.now();
        l.signal("SIGSTOP");
        outages.push({ holder, at });
        say(`SIGSTOP ${l.name} (${holder})`);
        await sleep(LEASE_TTL_MS * 3);
        l.signal("SIGCONT");
        say(`SIGCONT ${l.name}`);
      },
    },
    { at: random(0.55, 0.7), act: () => killLeader(dispatchers) },
    {
      at: random(0.7, 0.8),
      act: async () => {
        say("restarting PostgreSQL");
        server.restart();
        say("PostgreSQL restarted");
      },
    },
    { at: random(0.8, 0.95), act: () => killLeader(dispatchers) },
  ].sort((a, b) => a.at - b.at);
  for (const c of chaos) {
    const due = started + c.at * ARRIVAL_MS;
    if (due > Date.now()) await sleep(due - Date.now());
    await c.act();
  }
  await arrivals;
  await direct;
  say(`all ${JOBS} jobs arrived; ${accepted.length} direct dispatches accepted`);

  // Every job ran, every runner ended, every instance is gone.
  await waitFor(() => jobs.every((j) => forgejo.job(j.id)?.status === "success"), {
    timeoutMs: 600_000,
    intervalMs: 1000,
    what: "every job to finish",
  });
  say("every job finished");
  for (const name of accepted) {
    await waitFor(
      async () => {
        const res = await fetchJson(`${dispatcherUrl}/api/v1/runners/${name}?reason=chaos-test-done`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        return res.status === 200;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: `cancelling ${name}` },
    );
  }
  const runners = await waitFor(
    async () => {
      const res = await fetchJson(`${dispatcherUrl}/api/v1/runners?limit=5000`, {
        method: "GET",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const rs = res.body.runners as { name: string; state: string; job: { id: number } | null; instance_id: string | null }[];
      if (rs.length >= JOBS && rs.every((r) => r.state === "done" || r.state === "failed")) return rs;
      const states: Record<string, number> = {};
      for (const r of rs) states[r.state] = (states[r.state] ?? 0) + 1;
      throw new Error(`${rs.length} runners: ${JSON.stringify(states)}`);
    },
    { timeoutMs: 300_000, intervalMs: 1000, what: "every runner to end" },
  );
  say("every runner ended");
  await waitFor(() => nsc.instances().length === 0, { timeoutMs: 120_000, intervalMs: 1000, what: "no live instance" });

  const instances = nsc.instances({ includeDestroyed: true });
  const terms = { dispatcher: await leaseTerms(db, "dispatcher"), autoscaler: await leaseTerms(db, "autoscaler") };
  const effects = nscEffects(dispatchers, terms.dispatcher);
  const failover = failoverTimes(
    outages.filter((o) => o.holder.startsWith("d")),
    terms.dispatcher,
  ).filter((x): x is number => x !== undefined);
  const autoscalerFailover = failoverTimes(
    outages.filter((o) => o.holder.startsWith("a")),
    terms.autoscaler,
  );
  process.stdout.write(
    `chaos: ${JOBS} jobs, ${runners.length} runners, ${instances.length} instances; dispatcher lease terms ${terms.dispatcher.length}, ` +
      `failover median ${median(failover)} ms, max ${Math.max(...failover)} ms (${failover.join(", ")}); autoscaler failover ${autoscalerFailover.join(", ")} ms; ` +
      `${effects.length} nsc effects checked; took ${Math.round((Date.now() - started) / 1000)} s\n`,
  );

  // Every job got exactly one runner: Forgejo handed it out once, to the runner the dispatcher
  // launched for that very job (its record is pinned to the job). A record may end without an
  // instance ID although its instance ran: a replica that took the lease over while the launch was
  // interrupted, after the instance had run its job and ended, records it as done (recovery,
  // "completed"), knowing no instance to name.
  for (const j of jobs) expect(forgejo.job(j.id)?.attempt, `job ${j.id} taken once`).toBe(1);
  const byName = new Map(runners.map((r) => [r.name, r]));
  const takenBy = (id: number) => forgejo.state.runners.find((fr) => fr.id === forgejo.job(id)?.runnerId)?.name;
  const notItsRunner = jobs.filter((j) => byName.get(takenBy(j.id) ?? "")?.job?.id !== j.id).map((j) => String(j.id));
  // Its record says what happened: done (every job here succeeds), not failed.
  const notDone = jobs.filter((j) => byName.get(takenBy(j.id) ?? "")?.state !== "done").map((j) => String(j.id));
  // And no job had two runners that ran (two records pinned to it, each with an instance).
  const ran = runners.filter((r) => r.instance_id !== null && r.job !== null);
  const twice = [...repeated(ran.map((r) => String(r.job!.id))).keys()];
  const report =
    notItsRunner.length + notDone.length + twice.length === 0
      ? ""
      : await diagnose([...new Set([...notItsRunner, ...notDone, ...twice])], {
          forgejo,
          instances,
          replicas: all,
          runners,
          runner: async (name) =>
            (await fetchJson(`${dispatcherUrl}/api/v1/runners/${name}`, { method: "GET", headers: { authorization: `Bearer ${TOKEN}` } }))
              .body,
        });
  expect(notItsRunner, `jobs not taken by the runner launched for them (details: ${report})`).toEqual([]);
  expect(notDone, `jobs whose runner's record did not end done (details: ${report})`).toEqual([]);
  expect(twice, `jobs with more than one runner (details: ${report})`).toEqual([]);
  // None launched twice: one instance per runner name.
  expect([...repeated(instances.map((i) => i.labels["forgejo-nsc.runner"] ?? i.id))], "runners with two instances").toEqual([]);
  // No accepted dispatch lost.
  expect(
    missing(
      accepted,
      runners.map((r) => r.name),
    ),
    "accepted dispatches missing",
  ).toEqual([]);
  expect(accepted.length).toBeGreaterThan(0);
  // No replica acted after losing its lease; failover within two supervise intervals (plus start-up slack on 2 cores).
  expect(effectsOutsideTerms(effects, terms.dispatcher)).toEqual([]);
  // /readyz says what each replica does: one leads, the others stand by.
  const roles = await waitFor(
    async () => {
      const rs = (await Promise.all(dispatchers.map((d) => d.role()))).sort();
      return rs.join() === "leader,standby,standby" ? rs : undefined;
    },
    { timeoutMs: 30_000, what: "one dispatcher to say leader and two standby" },
  );
  expect(roles).toEqual(["leader", "standby", "standby"]);
  expect(failover.length).toBeGreaterThanOrEqual(3);
  expect(Math.max(...failover)).toBeLessThan(2 * LEASE_TTL_MS + 2000);
}, 1_200_000);

function dispatcherConfig(name: string, forgejo: FakeForgejo, nscBin: string, dir: string, db: { url: string; schema: string }) {
  return {
    forgejo: { base_url: forgejo.url, token: FAKE_ADMIN_TOKEN, timeout: "5s" },
    namespace: { nsc_binary: nscBin, workdir: join(dir, "runner-work"), wait_timeout: "30s", max_parallel: 6, max_runners: 500 },
    dispatcher: {
      store: db.url,
      postgres: { schema: db.schema, statement_timeout: "5s", connect_timeout: "2s" },
      supervise_interval: `${LEASE_TTL_MS}ms`,
      lease_ttl: `${LEASE_TTL_MS}ms`,
      replica_name: name,
      queue_timeout: "30m",
      max_queue: 5000,
    },
    auth: { tokens: [TOKEN] },
    http: { rate_limit_per_minute: 100000 },
    log: { level: "debug" },
  };
}

function autoscalerConfig(name: string, forgejo: FakeForgejo, dispatcherUrl: string, db: { url: string; schema: string }) {
  return {
    dispatcher: { url: dispatcherUrl, token: TOKEN, timeout: "10s" },
    instances: [
      {
        name: "forge",
        forgejo: { base_url: forgejo.url, token: FAKE_ADMIN_TOKEN },
        scope: SCOPE,
        poll_interval: "2s",
        targets: [{ labels: [LABEL], ttl: "15m" }],
      },
    ],
    replicas: { store: db.url, schema: db.schema, lease_ttl: `${LEASE_TTL_MS}ms`, name },
    log: { level: "info" },
  };
}

async function query<T extends pg.QueryResultRow>(db: { url: string }, sql: string, params: unknown[]): Promise<T[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

async function leaseTerms(db: { url: string; schema: string }, name: string): Promise<Term[]> {
  const rows = await query<{ epoch: string; holder: string; acquired_at: Date }>(
    db,
    `SELECT epoch::text AS epoch, holder, acquired_at FROM ${db.schema}.lease_terms WHERE name = $1`,
    [name],
  );
  return rows.map((r) => ({ epoch: Number(r.epoch), holder: r.holder, acquiredAt: r.acquired_at.getTime() }));
}

/** Who holds the lease right now by the database's clock (undefined: nobody, or unreachable). */
async function liveHolder(db: { url: string; schema: string }, name: string): Promise<string | undefined> {
  const rows = await query<{ holder: string }>(
    db,
    `SELECT holder FROM ${db.schema}.leases WHERE name = $1 AND expires_at > clock_timestamp()`,
    [name],
  ).catch(() => []);
  return rows[0]?.holder;
}

/**
 * Every nsc run/create/destroy a dispatcher started, from its debug log ("nsc call", with the
 * call's duration): when it started, and which holding of the lease made it (a holder id is
 * `<replica>:<pid>:<random>`).
 */
function nscEffects(dispatchers: readonly Replica[], terms: readonly Term[]): Effect[] {
  const out: Effect[] = [];
  for (const d of dispatchers) {
    for (const { pid, lines } of d.incarnations()) {
      const holder = terms.find((t) => t.holder.startsWith(`${d.name}:${pid}:`))?.holder ?? `${d.name}:${pid}:never-held`;
      for (const l of lines) {
        if ((l.msg !== "nsc call" && l.msg !== "nsc call failed") || !["run", "create", "destroy"].includes(String(l.nsc))) continue;
        out.push({ holder, what: String(l.nsc), at: Date.parse(String(l.time)) - Number(l.ms ?? 0) });
      }
    }
  }
  return out;
}
