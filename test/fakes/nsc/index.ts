import { execFileSync } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of the fake `nsc` executable. */
export const FAKE_NSC_BIN = join(dirname(fileURLToPath(import.meta.url)), "nsc");

/**
 * "Always" (true) or "the next N calls" (a number, counted down by the fake). Absent or false or 0
 * means never.
 */
export type Trigger = boolean | number;

/**
 * Scenario knobs, stored in the state file and read by every invocation of the fake.
 * Set them with `setKnobs`; `null` removes a knob.
 */
export interface FakeNscKnobs {
  /** `run`: `Failed: ran out of capacity: …` (RPC shape), exit 1, no instance created. */
  runCapacity?: Trigger;
  /**
   * `run`: the instance is created but never becomes ready; after `--wait_timeout` (capped by
   * neverReadyDelayMs) nsc exits 1 and leaves the instance behind.
   */
  runNeverReady?: Trigger;
  /** Wording of the never-ready failure: "never_ready" mentions `cluster id: <id>` (default); "deadline" does not. */
  neverReadyWording?: "never_ready" | "deadline";
  /** Caps the time a never-ready run/create waits before failing (default: the full --wait_timeout). */
  neverReadyDelayMs?: number;
  /** `run`: the container exits before READY: `cluster is destroyed (cluster id: <id>)`, exit 1, instance destroyed. */
  runExitImmediately?: Trigger;
  /** Exit code recorded for runExitImmediately (default 1). */
  runExitCode?: number;
  /**
   * `run` and `create` sleep this long after recording the instance and before printing, so a
   * SIGTERM/SIGKILL during the wait leaves the instance behind, like the real CLI.
   */
  createDelayMs?: number;
  /** `create`: ResourceExhausted forever; the process blocks (retrying) until killed, creating nothing. */
  createCapacity?: Trigger;
  /** `create`: like runNeverReady. */
  createNeverReady?: Trigger;
  /** stderr progress interval of a capacity-blocked create with --log_actions (default 1000 ms). */
  createRetryLogMs?: number;
  /** `invocation error: … unavailable`, exit 1, for the next N (or all) calls of each command. */
  transient?: { describe?: Trigger; list?: Trigger; destroy?: Trigger; run?: Trigger; create?: Trigger; ssh?: Trigger };
  /**
   * The call blocks until killed: run and create after recording their instance (it is left
   * behind, as when the real CLI hangs waiting for it), the others before doing anything.
   */
  hang?: { run?: Trigger; create?: Trigger; list?: Trigger; describe?: Trigger; destroy?: Trigger };
  /**
   * A hanging call ignores SIGTERM and starts a child that holds its stdout and stderr open (the
   * child's pid is recorded as `hang_child_pid`): only SIGKILL to the process group ends both.
   */
  hangStubborn?: boolean;
  /**
   * Printed on stdout instead of the command's `-o json` answer (the command still takes effect);
   * createRecord is written to `create --output_json_to` instead of the instance record.
   */
  output?: { run?: string; create?: string; list?: string; describe?: string; createRecord?: string };
  /** `list -o json` prints a valid array of made-up instances at least this many bytes long. */
  listFloodBytes?: number;
  /**
   * "typed" (default): `"<id>" does not exist.` / `"<id>" is no longer running.`.
   * "raw": the server-message variants (`instance "<id>" not found (request id: …).`,
   * `instance "<id>" was destroyed (FailedPrecondition).`) for describe and destroy.
   */
  describeWording?: "typed" | "raw";
  /** `describe` of a destroyed instance returns a record with `tombstone` instead of failing. */
  describeTombstone?: boolean;
  /** `describe -o json` prints `null`. */
  describeNoSummary?: boolean;
  /**
   * Instances created by `run` are non-manual unless this is false: only `list --all` shows them
   * (whether the real server treats them so is unverified; the strict default proves we pass --all).
   */
  runNonManual?: boolean;
  /** Emulates nsc < v0.0.480: `run`/`create -o json` print `cluster_id` only. */
  omitInstanceId?: boolean;
  /**
   * Authentication failure for every command: "unauthenticated" (`no credentials found. We got: …`),
   * "expired" (`login token expired`), "not_logged_in", "permission_denied"; "ok" or absent = fine.
   * Independently, a set NSC_TOKEN_FILE must be JSON with bearer_token/session_token.
   */
  auth?: "ok" | "unauthenticated" | "expired" | "not_logged_in" | "permission_denied";
  /** Without NSC_TOKEN_FILE, fail with `not logged in` (the real CLI would look in ~/.config/ns). */
  requireTokenFile?: boolean;
  /** `auth check-login --duration d` fails when d exceeds this. */
  tokenValidForMs?: number;
  /** Windows instances from `create` get a `winrm` service unless this is false. */
  windowsWinrm?: boolean;
  /** Credentials of the rdp/winrm services of Windows instances (default runneradmin / a per-instance password). */
  windowsCredentials?: { username: string; password: string };
  /** Instances from `create` have no ssh service: `nsc ssh` fails with `instance does not have ssh`. */
  sshService?: boolean;
  /**
   * `nsc ssh` behaviour. "canned" (default): print stdout/stderr, exit with exitCode (non-zero →
   * `Failed: Process exited with status N`, exit 1). "exec": run the command locally under /bin/sh
   * with stdin passed through and the instance's env. holdUntilDestroyed: return only once the
   * instance is destroyed. Every session (command, stdin, user) is recorded on the instance.
   */
  ssh?: { mode?: "canned" | "exec"; stdout?: string; stderr?: string; exitCode?: number; holdUntilDestroyed?: boolean };
  /** `instance port-forward --target_port P`: connections are piped to forward["P"] ("host:port"), else closed. */
  forward?: Record<string, string>;
  /** `instance proxy -s S`: connections are piped to proxyTo[S] ("host:port"), else closed. */
  proxyTo?: Record<string, string>;
  /** Added to the wall clock for deadlines and timestamps, so tests pass a TTL without sleeping. */
  nowOffsetMs?: number;
  /** Region used without --region/--endpoint/NSC_ENDPOINT (default "eu", like a revocable token). */
  defaultRegion?: string;
  /** Machine type when none is given (default 2x4). */
  defaultMachineType?: string;
  /**
   * The executing stand-in: `run … -- CMD` (and a container the fake Compute API made here through
   * `__fake api-create`) really runs CMD as a local process (own process group,
   * own directory under runDir or <state dir>/exec/<id>, the -e environment, pathPrefix first on
   * PATH before basePath). list/describe show the instance running until the process exits; its
   * exit ends the instance (TERMINATE_ON_EXIT); destroy and the deadline kill the process group.
   */
  execute?: { pathPrefix?: string; basePath?: string; runDir?: string } | null;
}

export interface FakeNscContainer {
  id: string;
  name: string | null;
  state: "running" | "exited";
  ready: boolean;
  started_at: string;
  exit_code: number | null;
  terminated_at: string | null;
  /** With the `execute` knob: the container process (its process group id) and its directory. */
  pid?: number;
  exit_file?: string;
  dir?: string;
}

export interface FakeNscVolume {
  kind: "cache" | "persistent";
  tag: string;
  mount_point: string;
  size_mb?: number;
}

export interface FakeNscService {
  status: string;
  endpoint?: string;
  credentials?: { username: string; password: string };
}

export interface FakeNscInstance {
  id: string;
  region: string;
  kind: "run" | "create";
  /** Container instances: made by `nsc run`, or by the fake Compute API's CreateInstance (`__fake api-create`). */
  created_by?: "run" | "compute-api";
  /** Whether `list` without --all shows it. */
  manual: boolean;
  created_at: string;
  deadline: string | null;
  destroyed_at: string | null;
  /** "container exited", "deadline", "destroy", "DestroyInstance[: reason]" (fake Compute API) or "__fake destroy-all". */
  destroy_reason: string | null;
  documented_purpose: string;
  machine_type: string;
  shape: { virtual_cpu: number; memory_megabytes: number; machine_arch: string; os: string };
  platform: string;
  labels: Record<string, string>;
  features: string[];
  volumes: FakeNscVolume[];
  services: Record<string, FakeNscService>;
  ssh_sessions: { at: string; command: string; stdin: string; user: string; container_name: string | null }[];
  port_forwards: { at: string; target_port: number; local_port: number }[];
  // run only
  image?: string;
  name?: string;
  user?: string | null;
  network?: string | null;
  env?: Record<string, string>;
  /** The container argv (everything after `--`, or the Compute API container's args). */
  args?: string[];
  container?: FakeNscContainer | null;
  // create only
  selectors?: string[];
  unique_tag?: string | null;
  bare?: boolean;
}

export interface FakeNscState {
  version: number;
  knobs: FakeNscKnobs;
  /** region → id → instance (destroyed ones stay, with destroyed_at). */
  instances: Record<string, Record<string, FakeNscInstance>>;
  /** Tokens minted by `token create` / `auth generate-dev-token`. */
  tokens: { kind: "revocable" | "dev"; token: string; name?: string; grants?: unknown[]; expires_at?: string | null; at: string }[];
}

export interface FakeNscCall {
  id: string;
  pid: number;
  /** argv after the executable. */
  argv: string[];
  /** "run", "instance port-forward", … (undefined when the command line did not parse). */
  command?: string;
  region?: string;
  env: { NSC_TOKEN_FILE: string | null; NSC_ENDPOINT: string | null; NS_DO_NOT_UPDATE: string | null; CI: string | null };
  cwd: string;
  time: string;
  /** null while running, or when the process was killed. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  durationMs?: number;
  /** The instance a run/create created, if any. */
  instance_id?: string;
  /** e.g. "cancelled: destroy without --force destroys nothing". */
  note?: string;
  /** With the hangStubborn knob: the child a hanging call left holding its output. */
  hang_child_pid?: number;
}

export interface FakeNsc {
  /** Absolute path of the executable: use it as namespace.nsc_binary. */
  bin: string;
  dir: string;
  statePath: string;
  logPath: string;
  /** Environment the process running nsc needs (FAKE_NSC_STATE, FAKE_NSC_LOG). */
  env: Record<string, string>;
  setKnobs(knobs: { [K in keyof FakeNscKnobs]?: FakeNscKnobs[K] | null }): void;
  /** Moves the fake clock forward (deadlines pass without sleeping). */
  advanceTime(ms: number): void;
  /** The state after applying deadlines and exited containers. */
  state(): FakeNscState;
  /** Every recorded invocation except the helper's own `__fake` calls, oldest first. */
  calls(filter?: string | ((c: FakeNscCall) => boolean)): FakeNscCall[];
  /** Instances (every region unless given), live ones only unless includeDestroyed. */
  instances(opts?: { region?: string; includeDestroyed?: boolean }): FakeNscInstance[];
  /** Marks a run container exited; the instance is destroyed with it (TERMINATE_ON_EXIT). */
  exitContainer(id: string, code?: number): void;
  destroyAll(): void;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** A lock file without a pid this old was left by a holder killed between creating and writing it (as in the executable). */
const EMPTY_LOCK_STALE_MS = 2_000;

/** Whether a lock file's holder is gone: its pid is dead, or it never wrote one and the file is old. */
function lockIsStale(lockPath: string): boolean {
  const text = readFileSync(lockPath, "utf8");
  const pid = Number(text);
  if (text.trim() === "" || !Number.isInteger(pid) || pid <= 0) return Date.now() - statSync(lockPath).mtimeMs > EMPTY_LOCK_STALE_MS;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** The fake's lock protocol (an exclusive lock file holding the pid; a dead or never-written holder's lock is taken over). */
function withLock<T>(statePath: string, fn: () => T): T {
  const lockPath = `${statePath}.lock`;
  const deadline = Date.now() + 15_000;
  let wait = 1;
  for (;;) {
    try {
      const fd = openSync(lockPath, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let stale = false;
    try {
      stale = lockIsStale(lockPath);
    } catch {
      // released meanwhile; try again
    }
    if (stale) {
      const aside = `${lockPath}.stale.${process.pid}`;
      try {
        renameSync(lockPath, aside);
        unlinkSync(aside);
      } catch {
        // someone else took it over
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`fake nsc lock ${lockPath} held for more than 15s`);
    Atomics.wait(sleepCell, 0, 0, wait);
    wait = Math.min(wait * 2, 20);
  }
  try {
    return fn();
  } finally {
    unlinkSync(lockPath);
  }
}

/** What the next nsc invocation will see: exited run containers and passed deadlines mean destroyed. */
function sweepView(s: FakeNscState): FakeNscState {
  const now = Date.now() + (s.knobs.nowOffsetMs ?? 0);
  for (const region of Object.values(s.instances)) {
    for (const inst of Object.values(region)) {
      if (inst.destroyed_at) continue;
      if (inst.kind === "run" && inst.container?.state === "exited") {
        inst.destroyed_at = inst.container.terminated_at ?? new Date(now).toISOString();
        inst.destroy_reason = "container exited";
      } else if (inst.deadline && Date.parse(inst.deadline) <= now) {
        inst.destroyed_at = inst.deadline;
        inst.destroy_reason = "deadline";
      }
    }
  }
  return s;
}

/**
 * Sets up a fake nsc with its state and call log in `dir` (a fresh temp dir by default).
 * Mutations go through the executable's `__fake` command so they take the same lock as
 * concurrent nsc invocations.
 */
export function createFakeNsc(dir?: string, initialKnobs: FakeNscKnobs = {}): FakeNsc {
  const root = dir ?? mkdtempSync(join(tmpdir(), "fake-nsc-"));
  mkdirSync(root, { recursive: true });
  const statePath = join(root, "nsc-state.json");
  const logPath = join(root, "nsc-calls.jsonl");
  const initial: FakeNscState = { version: 1, knobs: initialKnobs, instances: {}, tokens: [] };
  writeFileSync(statePath, JSON.stringify(initial));
  writeFileSync(logPath, "");
  const env = { FAKE_NSC_STATE: statePath, FAKE_NSC_LOG: logPath };
  const fake = (...args: string[]): string =>
    execFileSync(FAKE_NSC_BIN, ["__fake", ...args], {
      env: { ...process.env, ...env },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });

  const readState = (): FakeNscState => JSON.parse(readFileSync(statePath, "utf8")) as FakeNscState;
  // Reads need no lock: the fake replaces the file atomically.
  const state = (): FakeNscState => sweepView(readState());
  const patchKnobs = (patch: (k: FakeNscKnobs) => Record<string, unknown>): void =>
    withLock(statePath, () => {
      const s = readState();
      for (const [key, val] of Object.entries(patch(s.knobs))) {
        if (val === null || val === undefined) delete (s.knobs as Record<string, unknown>)[key];
        else (s.knobs as Record<string, unknown>)[key] = val;
      }
      const tmp = `${statePath}.${process.pid}.helper.tmp`;
      writeFileSync(tmp, JSON.stringify(s));
      renameSync(tmp, statePath);
    });

  return {
    bin: FAKE_NSC_BIN,
    dir: root,
    statePath,
    logPath,
    env,
    setKnobs: (knobs) => patchKnobs(() => knobs),
    advanceTime: (ms) => patchKnobs((k) => ({ nowOffsetMs: (k.nowOffsetMs ?? 0) + ms })),
    state,
    calls(filter) {
      const byId = new Map<string, FakeNscCall>();
      for (const line of readFileSync(logPath, "utf8").split("\n")) {
        if (!line) continue;
        const e = JSON.parse(line) as { phase: "start" | "end"; id: string } & Record<string, unknown>;
        if (e.phase === "start") {
          byId.set(e.id, { ...(e as unknown as FakeNscCall), exitCode: null, stdout: "", stderr: "" });
        } else {
          const c = byId.get(e.id);
          if (c) Object.assign(c, e);
        }
      }
      let out = [...byId.values()].filter((c) => c.argv[0] !== "__fake");
      for (const c of out) delete (c as Partial<{ phase: string }>).phase;
      if (typeof filter === "string") out = out.filter((c) => c.command === filter);
      else if (filter) out = out.filter(filter);
      return out;
    },
    instances(opts = {}) {
      const s = state();
      const regions = opts.region ? [opts.region] : Object.keys(s.instances);
      return regions
        .flatMap((r) => Object.values(s.instances[r] ?? {}))
        .filter((i) => opts.includeDestroyed || !i.destroyed_at)
        .sort((a, b) => a.created_at.localeCompare(b.created_at));
    },
    exitContainer: (id, code = 0) => void fake("exit", id, String(code)),
    destroyAll: () => void fake("destroy-all"),
  };
}
