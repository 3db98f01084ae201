import { utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { tempDir } from "../helpers/tmp.js";

// A process SIGKILLed between creating the fake's lock file and writing its pid into it leaves an
// empty lock behind. Every later call (and the test helper) must take it over, not wait forever.

let tmp: { dir: string; cleanup: () => void };
let fake: FakeNsc;

beforeEach(() => {
  tmp = tempDir("fnsc-fake-lock-");
  fake = createFakeNsc(join(tmp.dir, "nsc"));
});
afterEach(() => tmp.cleanup());

function leaveEmptyLock(ageMs: number): void {
  const lock = `${fake.statePath}.lock`;
  writeFileSync(lock, "");
  const then = new Date(Date.now() - ageMs);
  utimesSync(lock, then, then);
}

describe("the fake nsc's state lock", () => {
  it("takes over a zero-byte lock file once it is a few seconds old", async () => {
    leaveEmptyLock(10_000);
    // Without the takeover the call waits 15 s for the lock and then fails; 8 s is the deadline.
    const r = await execa(fake.bin, ["list", "--all", "-o", "json"], { env: fake.env, reject: false, timeout: 8_000 });
    expect(r.timedOut).toBe(false);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("null");
  });

  it("lets the test helper take over a zero-byte lock file too", () => {
    leaveEmptyLock(10_000);
    // Without the takeover this throws "held for more than 15s".
    fake.setKnobs({ runCapacity: 1 });
    expect(fake.state().knobs.runCapacity).toBe(1);
  });
});
