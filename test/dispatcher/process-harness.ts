import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { stringify } from "yaml";
import { openStore } from "../../src/store/open-store.js";
import type { RunnerRecord } from "../../src/store/types.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeForgejoOptions, FakeJob } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc, FakeNscCall, FakeNscInstance, FakeNscKnobs } from "../fakes/nsc/index.js";
import { startRunnerSimulator } from "../fakes/runner-sim.js";
import { fetchJson } from "../helpers/fetch-json.js";
import type { JsonReply } from "../helpers/fetch-json.js";
import { scanSink } from "../helpers/log-capture.js";
import type { Exit } from "../helpers/process-exit.js";
import { processTreeGroups } from "../helpers/process-group.js";
import { recordSecrets } from "../helpers/secrets.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ENTRY = join(ROOT, "src/bin/dispatcher.ts");

/** The bearer token clients use against the dispatcher process; a secret that must never be logged. */
export const PROCESS_API_TOKEN = "crash-test-api-token-5b0c1d2e3f405162";
export const LABEL = "namespace-profile-linux-medium";
export const REPO_SCOPE = { level: "repository", owner: "example", name: "app" } as const;

/** Generous: this machine has 2 cores and other suites run beside these. */
export const DEADLINE_MS = 45_000;

export interface DispatcherProcess {
  readonly pid: number;
  readonly url: string;
  /** Settles when the process has exited, however it ended. */
  readonly exited: Promise<Exit>;
  /** Everything the process wrote to stdout (its JSON log) so far. */
  stdout(): string;
  stderr(): string;
}

/** A config object merged over the defaults; plain objects merge key by key, anything else replaces. */
export type ConfigPatch = Record<string, unknown>;

export interface ProcessWorldOptions {
  forgejo?: FakeForgejoOptions;
  knobs?: FakeNscKnobs;
  config?: ConfigPatch;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function merge(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? merge(b, v) : v;
  }
  return out;
}

/**
 * The real dispatcher as an operating system process (`node --import tsx src/bin/dispatcher.ts`)
 * against the fake Forgejo (in this process, on 127.0.0.1) and the fake nsc executable, with its
 * SQLite state in a temp dir that survives kills and restarts. Each start is a new process on the
 * same state file; `kill` ends the whole process group, so a `nsc` child dies with it as it would
 * under systemd's control-group kill.
 */
export class ProcessWorld {
  readonly forgejo: FakeForgejo;
  readonly nsc: FakeNsc;
  readonly dir: string;
  readonly statePath: string;
  readonly configPath: string;
  /** Every process started so far, oldest first. */
  readonly processes: DispatcherProcess[] = [];
  private readonly cleanupDir: () => void;
  private config: Record<string, unknown>;
  /** Process groups we started: a dispatcher that exits may leave an `nsc` child in its group. */
  private readonly groups = new Set<number>();
  private sim: ReturnType<typeof startRunnerSimulator> | undefined;

  private constructor(forgejo: FakeForgejo, nsc: FakeNsc, tmp: { dir: string; cleanup: () => void }, patch: ConfigPatch) {
    this.forgejo = forgejo;
    this.nsc = nsc;
    this.dir = tmp.dir;
    this.cleanupDir = tmp.cleanup;
    this.statePath = join(tmp.dir, "state.db");
    this.configPath = join(tmp.dir, "dispatcher.yaml");
    const patFile = join(tmp.dir, "forgejo-pat");
    const apiTokens = join(tmp.dir, "api-tokens");
    writeFileSync(patFile, `${FAKE_ADMIN_TOKEN}\n`, { mode: 0o600 });
    writeFileSync(apiTokens, `${PROCESS_API_TOKEN}\n`, { mode: 0o600 });
    const base = {
      listen: "127.0.0.1:0",
      forgejo: { base_url: forgejo.url, token_file: patFile, timeout: "30s" },
      namespace: {
        nsc_binary: nsc.bin,
        workdir: join(tmp.dir, "runner-work"),
        wait_timeout: "60s",
        max_parallel: 4,
      },
      dispatcher: { state_path: this.statePath, supervise_interval: "200ms", shutdown_timeout: "30s" },
      auth: { tokens_file: apiTokens },
      log: { level: "debug" },
    };
    this.config = merge(base, patch);
  }

  static async create(opts: ProcessWorldOptions = {}): Promise<ProcessWorld> {
    const tmp = tempDir("fnsc-crash-");
    const forgejo = await startFakeForgejo({ repos: [{ owner: REPO_SCOPE.owner, name: REPO_SCOPE.name }], ...opts.forgejo });
    const nsc = createFakeNsc(join(tmp.dir, "nsc"), opts.knobs);
    return new ProcessWorld(forgejo, nsc, tmp, opts.config ?? {});
  }

  /** The process currently serving (the last one started). */
  get current(): DispatcherProcess {
    const p = this.processes.at(-1);
    if (!p) throw new Error("no dispatcher process has been started");
    return p;
  }

  /** Changes the config for the next start. */
  configure(patch: ConfigPatch): void {
    this.config = merge(this.config, patch);
  }

  /**
   * Starts a dispatcher process on the shared state and waits until /readyz answers 200.
   * `fileLimit` starts it under `ulimit -n <n>` (through bash), as a host with a low limit would.
   */
  async start(opts: { fileLimit?: number } = {}): Promise<DispatcherProcess> {
    writeFileSync(this.configPath, stringify(this.config));
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.nsc.env };
    delete env.NODE_OPTIONS;
    const argv = [process.execPath, "--import", "tsx", ENTRY, "--config", this.configPath];
    const [file, ...args] =
      opts.fileLimit === undefined ? argv : ["bash", "-c", `ulimit -n ${opts.fileLimit} && exec "$@"`, "bash", ...argv];
    const child = spawn(file as string, args, {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (child.pid !== undefined) this.groups.add(child.pid);
    let out = "";
    let err = "";
    // Everything the process writes also goes to the suite-wide secret scan (test/global-setup.ts).
    const sink = scanSink("dispatcher-process");
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      sink.write(d);
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      sink.write(d);
    });
    // "close", not "exit": output can still be in the pipes when the process has exited.
    child.once("close", () => sink.close());
    const exited = new Promise<Exit>((res) => {
      child.once("exit", (code, signal) => res({ code, signal }));
    });
    let exit: Exit | undefined;
    void exited.then((e) => (exit = e));
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start the dispatcher process: ${err}`);

    const url = await waitFor(
      () => {
        if (exit) throw new Error(`dispatcher exited during start-up (${JSON.stringify(exit)}): ${err.slice(-2000)} ${out.slice(-2000)}`);
        return /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(out)?.[1];
      },
      { timeoutMs: DEADLINE_MS, intervalMs: 50, what: "the dispatcher process to listen" },
    );
    const proc: DispatcherProcess = { pid, url, exited, stdout: () => out, stderr: () => err };
    this.processes.push(proc);
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { timeoutMs: DEADLINE_MS, what: "/readyz to answer 200" });
    return proc;
  }

  /**
   * Sends `signal` to the current process and waits for it to exit. Unless `group` is false, every
   * process it started gets it too, as under systemd or in a container: its process group and the
   * groups of its children (each nsc call runs in a group of its own).
   */
  async kill(signal: NodeJS.Signals = "SIGKILL", opts: { group?: boolean } = {}): Promise<Exit> {
    const p = this.current;
    if (opts.group === false) process.kill(p.pid, signal);
    else for (const pgid of processTreeGroups(p.pid)) signalGroup(pgid, signal);
    return p.exited;
  }

  /** Runs the runner simulator: it boots every instance fake nsc started and acts out forgejo-runner. */
  simulate(opts: { jobMs?: number } = {}): ReturnType<typeof startRunnerSimulator> {
    this.sim?.stop();
    this.sim = startRunnerSimulator({ nsc: this.nsc, forgejo: this.forgejo, dir: join(this.dir, "sim"), jobMs: opts.jobMs ?? 100 });
    return this.sim;
  }

  stopSimulator(): void {
    this.sim?.stop();
    this.sim = undefined;
  }

  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonReply> {
    return fetchJson(`${this.current.url}${path}`, { method, body, headers: { authorization: `Bearer ${PROCESS_API_TOKEN}`, ...headers } });
  }

  /** Dispatches one runner pinned to a new job in example/app; returns the runner name and the job. */
  async dispatchJob(extra: Record<string, unknown> = {}): Promise<{ name: string; job: FakeJob; dispatchId: string }> {
    const job = this.forgejo.addJob({ repo: `${REPO_SCOPE.owner}/${REPO_SCOPE.name}`, runs_on: [LABEL] });
    const res = await this.request("POST", "/api/v1/dispatch", {
      labels: [LABEL],
      scope: REPO_SCOPE,
      ttl: "20m",
      job: { id: job.id, handle: job.handle },
      ...extra,
    });
    if (res.status !== 202) throw new Error(`dispatch answered ${res.status}: ${JSON.stringify(res.body)}`);
    return { name: res.body.runners[0].name as string, job, dispatchId: res.body.dispatch_id as string };
  }

  /** The record as the running process's API shows it. */
  async runner(name: string): Promise<JsonReply["body"]> {
    const r = await this.request("GET", `/api/v1/runners/${name}`);
    if (r.status !== 200) throw new Error(`GET /api/v1/runners/${name} answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Waits until the API shows the runner in `state`. */
  async waitState(name: string, state: string, what = `${name} ${state}`): Promise<JsonReply["body"]> {
    return waitFor(
      async () => {
        const r = await this.runner(name);
        return r.state === state ? r : undefined;
      },
      { timeoutMs: DEADLINE_MS, intervalMs: 100, what },
    );
  }

  /** Reads the records straight from the SQLite file (when no process holds it or alongside one: WAL). */
  async records(): Promise<RunnerRecord[]> {
    const store = await openStore(this.statePath);
    try {
      return await store.listRunners({});
    } finally {
      await store.close();
    }
  }

  /** `nsc run` invocations for this runner name, killed ones included. */
  runCalls(name: string): FakeNscCall[] {
    return this.nsc.calls((c) => c.command === "run" && c.argv.includes(name));
  }

  /** Instances ever created for this runner (destroyed ones included). */
  instancesFor(name: string, opts: { live?: boolean } = {}): FakeNscInstance[] {
    return this.nsc.instances({ includeDestroyed: !opts.live }).filter((i) => i.labels["forgejo-nsc.runner"] === name);
  }

  /** Forgejo registrations that still exist (not deleted). */
  liveRegistrations(): FakeForgejo["state"]["runners"] {
    return this.forgejo.state.runners.filter((r) => !r.deleted);
  }

  /** Waits until the current process has run `n` more `nsc list` calls than now: n supervision looks. */
  async waitForLooks(n: number): Promise<void> {
    const before = this.nsc.calls("list").length;
    await waitFor(() => this.nsc.calls("list").filter((c) => c.exitCode === 0).length >= before + n, {
      timeoutMs: DEADLINE_MS,
      intervalMs: 100,
      what: `${n} supervision looks (nsc list)`,
    });
  }

  /** Every secret the processes could have seen: PAT, API token, runner tokens, registration tokens. */
  secrets(extra: readonly string[] = []): string[] {
    const s = this.forgejo.state;
    return [FAKE_ADMIN_TOKEN, PROCESS_API_TOKEN, ...s.runners.map((r) => r.token), ...s.registrationTokens.map((t) => t.token), ...extra];
  }

  /** Everything every dispatcher process wrote, stdout and stderr. */
  output(): string {
    return this.processes.map((p) => `${p.stdout()}\n${p.stderr()}`).join("\n");
  }

  /** The JSON log lines of every process with `msg` matching. */
  logLines(msg: RegExp): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const p of this.processes) {
      for (const line of p.stdout().split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          if (typeof o.msg === "string" && msg.test(o.msg)) out.push(o);
        } catch {
          // a line cut by SIGKILL
        }
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.stopSimulator();
    // Tokens minted during the run: the suite-wide scan looks for them in every log too.
    recordSecrets(this.secrets());
    for (const pgid of this.groups) for (const group of processTreeGroups(pgid)) signalGroup(group, "SIGKILL");
    await Promise.all(this.processes.map((p) => p.exited));
    await this.forgejo.close();
    this.cleanupDir();
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the whole group is gone
  }
}

/** Secrets must not appear anywhere the dispatcher processes wrote (stdout, stderr). */
export function expectNoSecrets(world: ProcessWorld, extra: readonly string[] = []): void {
  const text = world.output();
  expect(text.length).toBeGreaterThan(0);
  const secrets = world.secrets(extra).filter((s) => s.length >= 8);
  const leaked = secrets.filter((s) => text.includes(s));
  expect(leaked, "secrets found in the dispatcher's output").toEqual([]);
}

/**
 * The three promises, checked on the fakes' own state once the runners have finished:
 * nothing lost (each runner done, its job run), nothing leaked (no live instance, no live
 * registration), nothing launched twice (one instance, one successful `nsc run`, one job attempt).
 */
export async function expectSettled(
  world: ProcessWorld,
  runners: { name: string; job?: FakeJob }[],
  sim?: ReturnType<typeof startRunnerSimulator>,
): Promise<void> {
  for (const { name } of runners) await world.waitState(name, "done");
  await waitFor(() => world.nsc.instances().length === 0, { timeoutMs: DEADLINE_MS, what: "no live instance" });
  // A registration whose answer was lost in a kill is swept as stale (offline, our prefix, no live record).
  await waitFor(() => world.liveRegistrations().length === 0, {
    timeoutMs: DEADLINE_MS,
    intervalMs: 100,
    what: `no live Forgejo registration (left: ${JSON.stringify(world.liveRegistrations().map((r) => r.name))})`,
  });
  for (const { name, job } of runners) {
    expect(world.instancesFor(name), `instances of ${name}`).toHaveLength(1);
    // A run the kill cut off counts (it created the one instance that was then adopted); a run
    // that failed with exit 1 is a launch attempt, and any instance it left is counted above.
    expect(
      world.runCalls(name).filter((c) => c.exitCode !== 1),
      `nsc run calls for ${name} that did not fail`,
    ).toHaveLength(1);
    if (job) {
      const j = world.forgejo.job(job.id);
      expect(j?.status, `job ${job.id}`).toBe("success");
      expect(j?.attempt, `attempts of job ${job.id}`).toBe(1);
      if (sim)
        expect(
          sim.events.filter((e) => e.type === "took_job" && e.job === job.id),
          `runners that took job ${job.id}`,
        ).toHaveLength(1);
    }
  }
}
