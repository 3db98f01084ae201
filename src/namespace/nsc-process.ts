import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";

/**
 * Child processes in their own process group, so a hung tool and everything it started (a wrapper
 * script's children holding its stdout open) can be stopped together, with bounded output and time.
 */

export interface BoundedRunOptions {
  env: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | undefined;
  /** After this the group gets SIGTERM, and SIGKILL `killGraceMs` later. */
  timeoutMs: number;
  killGraceMs: number;
  /** More stdout than this stops the group: the answer is refused rather than held in memory. */
  maxStdoutBytes: number;
  signal?: AbortSignal | undefined;
}

export interface BoundedRunResult {
  /** Everything the process printed, up to maxStdoutBytes. */
  stdout: string;
  /** The last STDERR_TAIL_BYTES of stderr (error reports come last). */
  stderr: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** stdout went past maxStdoutBytes and the group was stopped. */
  overflowed: boolean;
  /** The process could not be started (ENOENT, EACCES, EMFILE …). */
  spawnError?: NodeJS.ErrnoException | undefined;
}

const STDERR_TAIL_BYTES = 256 * 1024;
/** After the leader exits, how long its group may keep stdout/stderr open before it is killed. */
const LINGER_MS = 1_000;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Like execa's cleanup, which does not apply to detached children: our groups do not outlive us. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of live) signalGroup(child, "SIGTERM");
  });
}

/** Sends a signal to the child's whole process group; a group that is gone is fine. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group has ended
  }
}

/** Starts `file` as the leader of a new process group (no shell); stdout and stderr are pipes. */
export function spawnGroup(
  file: string,
  args: readonly string[],
  opts: { env: NodeJS.ProcessEnv; stdin: "pipe" | "ignore" },
): ChildProcess {
  installExitHook();
  const child = spawn(file, args, { env: opts.env, detached: true, shell: false, stdio: [opts.stdin, "pipe", "pipe"] });
  live.add(child);
  child.once("close", () => live.delete(child));
  child.once("error", () => live.delete(child));
  return child;
}

/** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the leader has exited (bounded). */
export async function stopGroup(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  signalGroup(child, "SIGTERM");
  const kill = setTimeout(() => signalGroup(child, "SIGKILL"), graceMs);
  let giveUp: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (giveUp = setTimeout(resolve, graceMs + LINGER_MS)))]);
  clearTimeout(giveUp);
  // A child of the leader may still hold the pipes; the group is killed either way.
  signalGroup(child, "SIGKILL");
  clearTimeout(kill);
  live.delete(child);
}

/**
 * Runs a command to completion with every resource bounded: wall time (then the whole group is
 * killed), stdout size (then the group is killed and `overflowed` set), stderr (its tail is kept).
 * Never rejects: spawn failures come back as `spawnError`.
 */
export function runBounded(file: string, args: readonly string[], opts: BoundedRunOptions): Promise<BoundedRunResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    let outBytes = 0;
    let err: Buffer[] = [];
    let errBytes = 0;
    const flags = { timedOut: false, cancelled: false, overflowed: false };
    const timers: NodeJS.Timeout[] = [];
    let settled = false;
    let child: ChildProcess;

    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener("abort", onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      live.delete(child);
      const stderr = Buffer.concat(err).subarray(-STDERR_TAIL_BYTES).toString("utf8");
      resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr, exitCode, signal, ...flags, spawnError });
    };
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      signalGroup(child, "SIGTERM");
      timers.push(setTimeout(() => signalGroup(child, "SIGKILL"), opts.killGraceMs));
      // Bounded even if something outside the group still holds the pipes.
      timers.push(setTimeout(() => finish(child.exitCode, child.signalCode), opts.killGraceMs + LINGER_MS));
    };
    function onAbort() {
      flags.cancelled = true;
      stop();
    }

    try {
      child = spawnGroup(file, args, { env: opts.env, stdin: opts.input !== undefined ? "pipe" : "ignore" });
    } catch (e) {
      // Some spawn failures throw instead of emitting "error".
      child = { stdout: null, stderr: null } as unknown as ChildProcess;
      finish(null, null, e as NodeJS.ErrnoException);
      return;
    }
    child.once("error", (e: NodeJS.ErrnoException) => {
      if (child.pid === undefined) finish(null, null, e);
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      if (flags.overflowed) return;
      if (outBytes + chunk.length > opts.maxStdoutBytes) {
        flags.overflowed = true;
        // Reading no further makes the writer fail (EPIPE) if the signals take a while.
        child.stdout?.destroy();
        stop();
        return;
      }
      out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      err.push(chunk);
      errBytes += chunk.length;
      if (errBytes > 2 * STDERR_TAIL_BYTES) {
        err = [Buffer.concat(err).subarray(-STDERR_TAIL_BYTES)];
        errBytes = STDERR_TAIL_BYTES;
      }
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on("error", () => undefined); // the command may exit without reading it (EPIPE)
      child.stdin.end(opts.input);
    }
    child.once("exit", () => {
      // A leftover member of the group holding stdout would keep "close" from ever coming.
      timers.push(
        setTimeout(() => {
          signalGroup(child, "SIGKILL");
          finish(child.exitCode, child.signalCode);
        }, LINGER_MS),
      );
    });
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => finish(code, signal));
    timers.push(
      setTimeout(() => {
        flags.timedOut = true;
        stop();
      }, opts.timeoutMs),
    );
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
