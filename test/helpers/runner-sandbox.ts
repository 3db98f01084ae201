import { join } from "node:path";
import { createFakeRunner } from "../fakes/forgejo-runner/index.js";
import type { FakeRunner } from "../fakes/forgejo-runner/index.js";
import { perTest } from "./per-test.js";
import { tempDir } from "./tmp.js";

/** What a bootstrap script test runs in; a fresh one for every test. */
export interface RunnerSandbox {
  /** A temporary directory, removed after the test. */
  readonly dir: string;
  /** A fake forgejo-runner in `dir`/fake: put `runner.env` in the script's environment. */
  readonly runner: FakeRunner;
  /** `dir`/pwned: the file hostile values would create if a script ever ran them. */
  readonly marker: string;
}

/** The bootstrap test scaffold: call once at the top level of a test file; read the fields inside tests. */
export function runnerSandbox(prefix: string): RunnerSandbox {
  return perTest(
    () => {
      const tmp = tempDir(prefix);
      return { dir: tmp.dir, runner: createFakeRunner(join(tmp.dir, "fake")), marker: join(tmp.dir, "pwned"), cleanup: tmp.cleanup };
    },
    (sandbox) => sandbox.cleanup(),
  );
}
