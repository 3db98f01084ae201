import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Directory holding the fake `forgejo-runner`: put it first on PATH. */
export const FAKE_RUNNER_DIR = dirname(fileURLToPath(import.meta.url));

export interface FileSnapshot {
  path: string;
  content?: string;
  /** Octal permission bits, e.g. "600". */
  mode?: string;
  /** The file was a FIFO (the token handed over without touching the disk). */
  fifo?: boolean;
  error?: string;
}

export interface FakeRunnerCall {
  argv: string[];
  /** register, one-job, daemon */
  command: string;
  cwd: string;
  /** FORGEJO_*, NSC_*, GITEA_* and FAKE_RUNNER_RECORD_ENV variables as the runner saw them. */
  env: Record<string, string>;
  /** Values of every --label flag. */
  labels: string[];
  config: FileSnapshot | null;
  tokenFile: FileSnapshot | null;
  runnerFile: FileSnapshot | null;
  /** What the real runner would have refused. */
  problems: string[];
  exitCode: number;
}

export interface FakeRunner {
  binDir: string;
  logPath: string;
  /** FAKE_RUNNER_LOG and PATH with the fake first. */
  env: Record<string, string>;
  calls(): FakeRunnerCall[];
}

export function createFakeRunner(dir?: string): FakeRunner {
  const root = dir ?? mkdtempSync(join(tmpdir(), "fake-runner-"));
  mkdirSync(root, { recursive: true });
  const logPath = join(root, "forgejo-runner-calls.jsonl");
  writeFileSync(logPath, "");
  return {
    binDir: FAKE_RUNNER_DIR,
    logPath,
    env: { FAKE_RUNNER_LOG: logPath, PATH: `${FAKE_RUNNER_DIR}:${process.env.PATH ?? "/usr/bin:/bin"}` },
    calls: () =>
      existsSync(logPath)
        ? readFileSync(logPath, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as FakeRunnerCall)
        : [],
  };
}
