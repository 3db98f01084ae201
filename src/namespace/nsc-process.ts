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
 * The first stdout line (trimmed) that `match` turns into a value, for a process that keeps running.
 * Rejects with `timedOut()` after `limitMs`, with `ended()` when the process ends (or cannot
 * start) first, and with what `match` throws. Only a partial line is held: a tunnel prints a line
 * per connection for as long as it runs.
 */
export function firstMatchingLine<T>(
  child: ChildProcess,
  match: (line: string) => T | undefined,
  limitMs: number,
  errors: { timedOut: () => Error; ended: (spawnError?: NodeJS.ErrnoException) => Error },
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(errors.timedOut()), limitMs);
    child.stdout?.on("data", (d: Buffer) => {
      buf = (buf + String(d)).slice(-64 * 1024);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: T | undefined;
        try {
          m = match(line.trim());
        } catch (err) {
          clearTimeout(timer);
          reject(err);
          return;
        }
        if (m !== undefined) {
          clearTimeout(timer);
          resolve(m);
        }
      }
    });
    const ended = (spawnError?: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(errors.ended(spawnError));
    };
    child.once("error", (e: NodeJS.ErrnoException) => child.pid === undefined && ended(e));
    child.once("close", () => ended());
  });
}

/**
 * Runs a command to completion with every resource bounded: wall time (then the whole group is
 * killed), stdout size (then the group is killed and `overflowed` set), stderr (its tail is kept).
 * Never rejects: spawn failures come back as `spawnError`.
 */
export function runBounded(file: string, args: readonly string[], opts: BoundedRunOptions): Promise<BoundedRunResult> {
  return new Promise((resolve) => new BoundedRun(opts, resolve).start(file, args));
}

/** Stdout up to a limit, and the tail of stderr. */
class BoundedOutput {
  private readonly out: Buffer[] = [];
  private outBytes = 0;
  private err: Buffer[] = [];
  private errBytes = 0;

  constructor(private readonly maxStdoutBytes: number) {}

  /** Keeps a stdout chunk; false (keeping nothing) once stdout would pass the limit. */
  addStdout(chunk: Buffer): boolean {
    if (this.outBytes + chunk.length > this.maxStdoutBytes) return false;
    this.out.push(chunk);
    this.outBytes += chunk.length;
    return true;
  }

  addStderr(chunk: Buffer): void {
    this.err.push(chunk);
    this.errBytes += chunk.length;
    if (this.errBytes > 2 * STDERR_TAIL_BYTES) {
      this.err = [Buffer.concat(this.err).subarray(-STDERR_TAIL_BYTES)];
      this.errBytes = STDERR_TAIL_BYTES;
    }
  }

  stdout(): string {
    return Buffer.concat(this.out).toString("utf8");
  }

  stderr(): string {
    return Buffer.concat(this.err).subarray(-STDERR_TAIL_BYTES).toString("utf8");
  }
}

/** One runBounded call: the child, its output, its timers, and the single place it settles (finish). */
class BoundedRun {
  private readonly output: BoundedOutput;
  private readonly flags = { timedOut: false, cancelled: false, overflowed: false };
  private readonly timers: NodeJS.Timeout[] = [];
  private settled = false;
  private stopping = false;
  private child!: ChildProcess;
  private readonly onAbort = (): void => {
    this.flags.cancelled = true;
    this.stop();
  };

  constructor(
    private readonly opts: BoundedRunOptions,
    private readonly resolve: (result: BoundedRunResult) => void,
  ) {
    this.output = new BoundedOutput(opts.maxStdoutBytes);
  }

  start(file: string, args: readonly string[]): void {
    const opts = this.opts;
    try {
      this.child = spawnGroup(file, args, { env: opts.env, stdin: opts.input !== undefined ? "pipe" : "ignore" });
    } catch (e) {
      // Some spawn failures throw instead of emitting "error".
      this.child = { stdout: null, stderr: null } as unknown as ChildProcess;
      this.finish(null, null, e as NodeJS.ErrnoException);
      return;
    }
    const child = this.child;
    child.once("error", (e: NodeJS.ErrnoException) => {
      if (child.pid === undefined) this.finish(null, null, e);
    });
    this.collect(child);
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on("error", () => undefined); // the command may exit without reading it (EPIPE)
      child.stdin.end(opts.input);
    }
    child.once("exit", () => {
      // A leftover member of the group holding stdout would keep "close" from ever coming.
      this.timers.push(
        setTimeout(() => {
          signalGroup(child, "SIGKILL");
          this.finish(child.exitCode, child.signalCode);
        }, LINGER_MS),
      );
    });
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => this.finish(code, signal));
    this.timers.push(
      setTimeout(() => {
        this.flags.timedOut = true;
        this.stop();
      }, opts.timeoutMs),
    );
    if (opts.signal?.aborted) this.onAbort();
    else opts.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** Reads stdout (stopping the group when it overflows) and stderr. */
  private collect(child: ChildProcess): void {
    child.stdout?.on("data", (chunk: Buffer) => {
      if (this.flags.overflowed) return;
      if (!this.output.addStdout(chunk)) {
        this.flags.overflowed = true;
        // Reading no further makes the writer fail (EPIPE) if the signals take a while.
        child.stdout?.destroy();
        this.stop();
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => this.output.addStderr(chunk));
  }

  /** SIGTERM to the group, SIGKILL after killGraceMs; settles even if the pipes stay open. */
  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    const child = this.child;
    signalGroup(child, "SIGTERM");
    this.timers.push(setTimeout(() => signalGroup(child, "SIGKILL"), this.opts.killGraceMs));
    // Bounded even if something outside the group still holds the pipes.
    this.timers.push(setTimeout(() => this.finish(child.exitCode, child.signalCode), this.opts.killGraceMs + LINGER_MS));
  }

  private finish(exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: NodeJS.ErrnoException): void {
    if (this.settled) return;
    this.settled = true;
    for (const t of this.timers) clearTimeout(t);
    this.opts.signal?.removeEventListener("abort", this.onAbort);
    const child = this.child;
    child.stdout?.destroy();
    child.stderr?.destroy();
    live.delete(child);
    const stderr = this.output.stderr();
    this.resolve({ stdout: this.output.stdout(), stderr, exitCode, signal, ...this.flags, spawnError });
  }
}
