import { utimesSync, writeFileSync } from "node:fs";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { fakeNscSandbox } from "../helpers/fake-nsc-sandbox.js";

// A process SIGKILLed between creating the fake's lock file and writing its pid into it leaves an
// empty lock behind. Every later call (and the test helper) must take it over, not wait forever.

const sandbox = fakeNscSandbox("fnsc-fake-lock-");

function leaveEmptyLock(ageMs: number): void {
  const lock = `${sandbox.nsc.statePath}.lock`;
  writeFileSync(lock, "");
  const then = new Date(Date.now() - ageMs);
  utimesSync(lock, then, then);
}

describe("the sandbox.nsc nsc's state lock", () => {
  it("takes over a zero-byte lock file once it is a few seconds old", async () => {
    leaveEmptyLock(10_000);
    // Without the takeover the call waits 15 s for the lock and then fails; 8 s is the deadline.
    const r = await execa(sandbox.nsc.bin, ["list", "--all", "-o", "json"], { env: sandbox.nsc.env, reject: false, timeout: 8_000 });
    expect(r.timedOut).toBe(false);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("null");
  });

  it("lets the test helper take over a zero-byte lock file too", () => {
    leaveEmptyLock(10_000);
    // Without the takeover this throws "held for more than 15s".
    sandbox.nsc.setKnobs({ runCapacity: 1 });
    expect(sandbox.nsc.state().knobs.runCapacity).toBe(1);
  });
});
