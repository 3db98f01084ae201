import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { scanSink } from "../helpers/log-capture.js";
import type { Exit } from "../helpers/process-exit.js";
import { waitFor } from "../helpers/wait.js";

/** A process a test started, its output kept in memory and appended to the whole-suite secret scan. */
export interface TestProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  /** The exit, once the process has ended. */
  exit(): Exit | undefined;
  stdout(): string;
  stderr(): string;
  /** The JSON lines of stdout (pino, Caddy's logs), unparsable lines skipped. */
  jsonLines(): Record<string, unknown>[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<Exit>;
}

export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv },
): TestProcess {
  const child = spawn(command, [...args], { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
  const sink = scanSink(name);
  let out = "";
  let err = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString("utf8");
    sink.write(b);
  });
  child.stderr?.on("data", (b: Buffer) => {
    err += b.toString("utf8");
    sink.write(b);
  });
  let ended: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    // "close" rather than "exit": every byte of output has been read by then.
    child.once("close", (code, signal) => {
      ended = { code, signal };
      sink.close();
      resolve(ended);
    });
    child.once("error", (e) => {
      err += `\nspawn failed: ${e.message}`;
      ended = { code: null, signal: null };
      sink.close();
      resolve(ended);
    });
  });
  return {
    name,
    child,
    exited,
    exit: () => ended,
    stdout: () => out,
    stderr: () => err,
    jsonLines() {
      const lines: Record<string, unknown>[] = [];
      for (const l of `${out}\n${err}`.split("\n")) {
        if (!l.startsWith("{")) continue;
        try {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          // a partial line at the end of a chunk
        }
      }
      return lines;
    },
    async stop(graceMs = 10_000) {
      if (ended) return ended;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Waits for fastify's "Server listening at http://127.0.0.1:N" line; fails early if the process exits. */
export async function listeningUrl(p: TestProcess, timeoutMs: number): Promise<string> {
  return waitFor(
    () => {
      const ended = p.exit();
      if (ended)
        throw new Error(
          `${p.name} exited during start-up (${JSON.stringify(ended)}):\n${p.stderr().slice(-2000)}\n${p.stdout().slice(-2000)}`,
        );
      return /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(p.stdout())?.[1];
    },
    { timeoutMs, intervalMs: 50, what: `${p.name} to listen` },
  );
}
