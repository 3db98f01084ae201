import { join } from "node:path";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { perTest } from "./per-test.js";
import { tempDir } from "./tmp.js";

/** A fake nsc executable in a temporary directory; a fresh one for every test. */
export interface FakeNscSandbox {
  /** The temporary directory, removed after the test. */
  readonly dir: string;
  /** The fake nsc, its state in `dir`/nsc. */
  readonly nsc: FakeNsc;
}

/** Call once in a test file (or describe block); read the fields inside tests. */
export function fakeNscSandbox(prefix: string): FakeNscSandbox {
  return perTest(
    () => {
      const tmp = tempDir(prefix);
      return { dir: tmp.dir, nsc: createFakeNsc(join(tmp.dir, "nsc")), cleanup: tmp.cleanup };
    },
    (sandbox) => sandbox.cleanup(),
  );
}
