import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { signalGroup } from "../../src/namespace/nsc-process.js";
import type { FakeForgejo } from "./forgejo/index.js";
import type { FakeNsc, FakeNscInstance } from "./nsc/index.js";

const run = promisify(execFile);

/**
 * Runs a bootstrap script as the leader of its own process group, waits up to 10 s for it to exit,
 * then kills whatever is left in the group. Undefined when it exited 0, else what went wrong (its
 * stderr, or the exit status).
 */
function runBootstrap(
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv },
  running: Set<() => void>,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(args[0] ?? "/bin/sh", args.slice(1), { ...opts, detached: true, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + String(d)).slice(-16_384)));
    const endGroup = () => signalGroup(child, "SIGKILL");
    const timer = setTimeout(endGroup, 10_000);
    // The simulator's stop() ends the groups still running (a test that ends mid-boot).
    running.add(endGroup);
    child.once("error", (err) => {
      clearTimeout(timer);
      running.delete(endGroup);
      resolve(String(err));
    });
    // "exit", not "close": a leftover in the group may hold stderr open until it is killed.
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      running.delete(endGroup);
      endGroup();
      resolve(code === 0 ? undefined : stderr || `bootstrap exited with ${code ?? signal}`);
    });
  });
}

/**
 * Live instances read straight from the fake's state file (written by atomic rename), without the
 * synchronous `__fake state` call, so a simulator sharing a process with the daemons never blocks
 * their event loop.
 */
export function liveInstances(nsc: FakeNsc): FakeNscInstance[] {
  if (!existsSync(nsc.statePath)) return [];
  const state = JSON.parse(readFileSync(nsc.statePath, "utf8")) as { instances: Record<string, Record<string, FakeNscInstance>> };
  return Object.values(state.instances)
    .flatMap((byId) => Object.values(byId))
    .filter((i) => !i.destroyed_at);
}

/** `__fake exit` without blocking the event loop. */
async function exitContainer(nsc: FakeNsc, id: string, code: number): Promise<void> {
  await run(nsc.bin, ["__fake", "exit", id, String(code)], { env: { ...process.env, ...nsc.env } });
}
const FAKE_RUNNER_DIR = join(dirname(fileURLToPath(import.meta.url)), "forgejo-runner");

interface RunnerInvocation {
  argv: string[];
  command: string;
  labels: string[];
  env: Record<string, string>;
  tokenFile: { content?: string } | null;
  exitCode: number;
  problems: string[];
}

export type SimEvent =
  | { type: "booted"; instance: string; runner: string; at: number }
  | { type: "connected"; instance: string; runner: string; at: number }
  | { type: "took_job"; instance: string; runner: string; job: number; at: number }
  | { type: "finished_job"; instance: string; runner: string; job: number; at: number }
  | { type: "exited"; instance: string; runner: string; at: number; code: number }
  | { type: "bootstrap_failed"; instance: string; runner: string; at: number; detail: string };

interface Tracked {
  instance: string;
  runner: string;
  uuid?: string | undefined;
  handle?: string | undefined;
  job?: { id: number; since: number } | undefined;
  oneJob: boolean;
  done: boolean;
}

/**
 * Plays the part of the machines Namespace would boot: for every instance the fake `nsc run`
 * created, it runs the real bootstrap script (the container's argv) under /bin/sh with the
 * instance's environment and the fake `forgejo-runner` on PATH, then acts out what that runner
 * would do against the fake Forgejo — connect, take the job it is pinned to (or any matching one),
 * finish it after `jobMs`, and exit, which ends the instance (TERMINATE_ON_EXIT).
 */
export function startRunnerSimulator(opts: { nsc: FakeNsc; forgejo: FakeForgejo; dir: string; jobMs?: number; intervalMs?: number }) {
  const jobMs = opts.jobMs ?? 200;
  const tracked = new Map<string, Tracked>();
  const events: SimEvent[] = [];
  let stopped = false;
  let busy = false;
  mkdirSync(opts.dir, { recursive: true });

  const emit = (e: SimEvent) => events.push(e);

  /** Ends the process group of each bootstrap still running. */
  const booting = new Set<() => void>();

  async function boot(inst: FakeNscInstance): Promise<void> {
    const runner = inst.labels["forgejo-nsc.runner"] ?? inst.id;
    const t: Tracked = { instance: inst.id, runner, oneJob: true, done: false };
    tracked.set(inst.id, t);
    emit({ type: "booted", instance: inst.id, runner, at: Date.now() });
    const args = inst.args ?? [];
    const log = join(opts.dir, `${inst.id}.runner.jsonl`);
    writeFileSync(log, "");
    const workdir = join(opts.dir, inst.id);
    mkdirSync(workdir, { recursive: true });
    // The script cds into namespace.workdir; tests point that at a temp dir. In its own process
    // group, ended as a whole afterwards, as the end of a real instance ends every process in it:
    // a background child (the token FIFO's writer, when the runner never read it) outlives nothing.
    const failure = await runBootstrap(
      args,
      {
        cwd: workdir,
        env: { PATH: `${FAKE_RUNNER_DIR}:${process.env.PATH ?? ""}`, HOME: workdir, ...(inst.env ?? {}), FAKE_RUNNER_LOG: log },
      },
      booting,
    );
    if (failure !== undefined) {
      t.done = true;
      emit({
        type: "bootstrap_failed",
        instance: inst.id,
        runner,
        at: Date.now(),
        detail: failure,
      });
      await exitContainer(opts.nsc, inst.id, 1);
      return;
    }
    const calls = readFileSync(log, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as RunnerInvocation);
    const names = (ls: string[]) => ls.map((l) => l.split(":")[0] as string);
    const flag = (c: RunnerInvocation, f: string) => {
      const i = c.argv.indexOf(`--${f}`);
      return i >= 0 ? c.argv[i + 1] : undefined;
    };
    const reg = calls.find((c) => c.command === "register");
    const main = calls.find((c) => c.command === "one-job" || c.command === "daemon");
    if (!main || main.exitCode !== 0) {
      t.done = true;
      emit({
        type: "bootstrap_failed",
        instance: inst.id,
        runner,
        at: Date.now(),
        detail: JSON.stringify(main?.problems ?? "no one-job call"),
      });
      await exitContainer(opts.nsc, inst.id, 1);
      return;
    }
    t.oneJob = main.command === "one-job";
    t.handle = flag(main, "handle");
    let connected;
    if (reg) {
      connected = opts.forgejo.connectRunner({
        registrationToken: flag(reg, "token"),
        name: flag(reg, "name"),
        labels: names((flag(reg, "labels") ?? "").split(",").filter(Boolean)),
      });
    } else {
      connected = opts.forgejo.connectRunner({
        uuid: flag(main, "uuid"),
        token: main.tokenFile?.content?.trim(),
        labels: names(main.labels),
        handle: t.handle,
      });
    }
    t.uuid = connected.runner.uuid;
    emit({ type: "connected", instance: inst.id, runner, at: Date.now() });
    if (connected.job) {
      t.job = { id: connected.job.id, since: Date.now() };
      emit({ type: "took_job", instance: inst.id, runner, job: connected.job.id, at: Date.now() });
    }
  }

  async function step(t: Tracked): Promise<void> {
    if (t.done) return;
    if (!t.job && t.uuid) {
      const job = opts.forgejo.fetchTask(t.uuid, t.handle);
      if (job) {
        t.job = { id: job.id, since: Date.now() };
        emit({ type: "took_job", instance: t.instance, runner: t.runner, job: job.id, at: Date.now() });
      }
    }
    if (t.job && Date.now() - t.job.since >= jobMs) {
      opts.forgejo.finishJob(t.job.id, "success");
      emit({ type: "finished_job", instance: t.instance, runner: t.runner, job: t.job.id, at: Date.now() });
      t.job = undefined;
      if (t.oneJob) {
        t.done = true;
        if (t.uuid) opts.forgejo.disconnectRunner(t.uuid);
        await exitContainer(opts.nsc, t.instance, 0);
        emit({ type: "exited", instance: t.instance, runner: t.runner, at: Date.now(), code: 0 });
      }
    }
  }

  async function tick(): Promise<void> {
    if (busy || stopped) return;
    busy = true;
    try {
      for (const inst of liveInstances(opts.nsc)) {
        if (inst.kind !== "run" || tracked.has(inst.id) || inst.container?.state !== "running") continue;
        await boot(inst);
      }
      for (const t of tracked.values()) await step(t);
    } finally {
      busy = false;
    }
  }

  const timer = setInterval(() => void tick().catch(() => undefined), opts.intervalMs ?? 50);
  return {
    events,
    tick,
    stop() {
      stopped = true;
      clearInterval(timer);
      for (const end of booting) end();
      booting.clear();
    },
  };
}
