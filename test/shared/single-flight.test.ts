import { describe, expect, it } from "vitest";
import { SingleFlight } from "../../src/shared/single-flight.js";

/** A pass the test ends by hand, counting the passes started and the most ever running at once. */
function gatedPasses(fail: (n: number) => boolean = () => false) {
  const gates: (() => void)[] = [];
  let started = 0;
  let running = 0;
  let most = 0;
  const pass = async () => {
    const n = ++started;
    running++;
    most = Math.max(most, running);
    await new Promise<void>((resolve) => gates.push(resolve));
    running--;
    if (fail(n)) throw new Error(`pass ${n} failed`);
  };
  const release = async () => {
    const open = gates.splice(0);
    for (const g of open) g();
    // Let the pass and the flight's bookkeeping settle.
    for (let i = 0; i < 10; i++) await Promise.resolve();
  };
  return { pass, release, started: () => started, most: () => most };
}

describe("SingleFlight", () => {
  it("runs one pass per kick when idle", async () => {
    const g = gatedPasses();
    const f = new SingleFlight(g.pass, () => {});
    f.kick();
    expect(f.busy).toBe(true);
    expect(g.started()).toBe(1);
    await g.release();
    await f.idle();
    expect(f.busy).toBe(false);
    expect(g.started()).toBe(1);
  });

  it("any number of kicks during a pass cause exactly one more, never overlapping", async () => {
    const g = gatedPasses();
    const f = new SingleFlight(g.pass, () => {});
    f.kick();
    f.kick();
    f.kick();
    f.kick();
    expect(g.started()).toBe(1);
    await g.release();
    expect(g.started()).toBe(2);
    await g.release();
    await f.idle();
    expect(g.started()).toBe(2);
    expect(g.most()).toBe(1);
  });

  it("a pass that throws is reported and later passes still run", async () => {
    const g = gatedPasses((n) => n === 1);
    const errors: string[] = [];
    const f = new SingleFlight(g.pass, (err) => errors.push((err as Error).message));
    f.kick();
    f.kick();
    await g.release();
    expect(errors).toEqual(["pass 1 failed"]);
    expect(g.started()).toBe(2);
    await g.release();
    await f.idle();
    expect(errors).toEqual(["pass 1 failed"]);
  });

  it("after stop() kicks do nothing and the pass asked for is dropped", async () => {
    const g = gatedPasses();
    const f = new SingleFlight(g.pass, () => {});
    f.kick();
    f.kick();
    f.stop();
    await g.release();
    await f.idle();
    f.kick();
    expect(g.started()).toBe(1);
    expect(f.busy).toBe(false);
  });

  it("idle() waits for the pass asked for during the current one", async () => {
    const g = gatedPasses();
    const f = new SingleFlight(g.pass, () => {});
    f.kick();
    f.kick();
    let idle = false;
    const waiting = f.idle().then(() => (idle = true));
    await g.release();
    expect(idle).toBe(false);
    await g.release();
    await waiting;
    expect(g.started()).toBe(2);
  });
});
