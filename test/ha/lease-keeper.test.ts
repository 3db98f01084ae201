import { describe, expect, it } from "vitest";
import { LeaseKeeper, SoleLease } from "../../src/ha/lease.js";
import type { LeaseBackend, LeaseChange, LeaseClaim } from "../../src/ha/lease.js";
import { captureLogger } from "../helpers/log-capture.js";

/** A backend that answers what the test says, after the fake clock moved by `latency`. */
function scripted() {
  const answers: (LeaseClaim | Error)[] = [];
  const released: number[] = [];
  let latency = 0;
  let clock = 0;
  const backend: LeaseBackend = {
    async claim() {
      clock += latency;
      const a = answers.shift();
      if (!a) throw new Error("no scripted answer");
      if (a instanceof Error) throw a;
      return a;
    },
    async release(_n, _h, epoch) {
      released.push(epoch);
    },
  };
  return {
    backend,
    answers,
    released,
    now: () => clock,
    advance: (ms: number) => (clock += ms),
    setLatency: (ms: number) => (latency = ms),
  };
}

function keeper(s: ReturnType<typeof scripted>, ttlMs = 3000, marginMs = 600) {
  const changes: LeaseChange[] = [];
  const k = new LeaseKeeper({
    name: "dispatcher",
    holder: "me",
    backend: s.backend,
    ttlMs,
    marginMs,
    logger: captureLogger().logger,
    monotonic: s.now,
    timers: false,
  });
  k.onChange((c) => changes.push(c));
  return { k, changes };
}

describe("LeaseKeeper: held() follows the local deadline (sent + ttl - margin)", () => {
  const cases: { name: string; latency: number; after: number; held: boolean }[] = [
    { name: "right after a claim", latency: 0, after: 0, held: true },
    { name: "just before the deadline", latency: 0, after: 2399, held: true },
    { name: "at the deadline (margin before the database's expiry)", latency: 0, after: 2400, held: false },
    { name: "a slow answer does not move the deadline later", latency: 1000, after: 1399, held: true },
    { name: "a slow answer: the deadline counts from when the claim was sent", latency: 1000, after: 1400, held: false },
    { name: "an answer slower than ttl - margin never makes it held", latency: 2500, after: 0, held: false },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const s = scripted();
      s.setLatency(c.latency);
      s.answers.push({ ok: true, epoch: 7 });
      const { k } = keeper(s);
      await k.renew();
      s.advance(c.after);
      expect(k.held()).toBe(c.held);
      expect(k.epoch()).toBe(c.held ? 7 : undefined);
    });
  }
});

describe("LeaseKeeper: what listeners are told", () => {
  it("gain, renewals without news, loss when a renewal fails past the deadline", async () => {
    const s = scripted();
    const { k, changes } = keeper(s);
    s.answers.push({ ok: true, epoch: 3 }, { ok: true, epoch: 3 }, new Error("connection refused"), new Error("connection refused"));
    await k.renew();
    s.advance(1000);
    await k.renew();
    expect(changes).toEqual([{ held: true, epoch: 3 }]);
    s.advance(1000);
    await k.renew(); // fails, but the holding from t=1000 lasts until 3400
    expect(k.held()).toBe(true);
    s.advance(1400);
    await k.renew();
    expect(k.held()).toBe(false);
    expect(changes).toEqual([
      { held: true, epoch: 3 },
      { held: false, epoch: 3, why: "not renewed in time: connection refused" },
    ]);
    expect(k.status()).toMatchObject({ role: "standby", epoch: null, lastError: "connection refused", acquisitions: 1, losses: 1 });
  });

  it("a paused replica learns on resume that it lost the lease, before any renewal", async () => {
    const s = scripted();
    const { k, changes } = keeper(s);
    s.answers.push({ ok: true, epoch: 1 });
    await k.renew();
    s.advance(60_000); // SIGSTOP … SIGCONT
    expect(k.held()).toBe(false);
    await Promise.resolve();
    expect(changes.at(-1)).toEqual({ held: false, epoch: 1, why: "expired or taken by another replica" });
  });

  it("a new epoch for the same holder is a new term: loss, then gain (recovery runs again)", async () => {
    const s = scripted();
    const { k, changes } = keeper(s);
    s.answers.push({ ok: true, epoch: 4 }, { ok: true, epoch: 5 });
    await k.renew();
    await k.renew();
    expect(changes).toEqual([
      { held: true, epoch: 4 },
      { held: false, epoch: 4, why: "expired and taken again" },
      { held: true, epoch: 5 },
    ]);
    expect(k.epoch()).toBe(5);
  });

  it("another holder: standby, with who holds it until when", async () => {
    const s = scripted();
    const { k, changes } = keeper(s);
    s.answers.push({ ok: false, holder: "other:12:abc", expiresAt: "2030-01-01T00:00:00.000Z" }, { ok: true, epoch: 9 });
    await k.renew();
    expect(k.held()).toBe(false);
    expect(k.status()).toMatchObject({ role: "standby", heldBy: "other:12:abc", heldUntil: "2030-01-01T00:00:00.000Z" });
    expect(changes).toEqual([]);
    await k.renew();
    expect(k.status()).toMatchObject({ role: "leader", epoch: 9, heldBy: null });
    expect(changes).toEqual([{ held: true, epoch: 9 }]);
  });

  it("losing to another holder while held tells the listeners at once", async () => {
    const s = scripted();
    const { k, changes } = keeper(s);
    s.answers.push({ ok: true, epoch: 2 }, { ok: false, holder: "b", expiresAt: "2030-01-01T00:00:00.000Z" });
    await k.renew();
    await k.renew();
    expect(changes).toEqual([
      { held: true, epoch: 2 },
      { held: false, epoch: 2, why: "expired or taken by another replica" },
    ]);
  });

  it("stop releases a held lease (and only then), and says nothing more", async () => {
    const s = scripted();
    const { k, changes } = keeper(s);
    s.answers.push({ ok: true, epoch: 6 });
    await k.renew();
    await k.stop();
    expect(s.released).toEqual([6]);
    expect(k.held()).toBe(false);
    expect(changes).toEqual([{ held: true, epoch: 6 }]);

    const s2 = scripted();
    const { k: k2 } = keeper(s2);
    s2.answers.push({ ok: true, epoch: 1 });
    await k2.renew();
    s2.advance(5000);
    await k2.stop();
    expect(s2.released).toEqual([]);
  });

  it("refuses a margin that leaves less than half the TTL to act in", () => {
    const s = scripted();
    expect(() => keeper(s, 1000, 500)).toThrow(/margin 500 ms must be less than half the TTL 1000 ms/);
  });
});

describe("SoleLease (SQLite, one replica)", () => {
  it("is always held and says single", () => {
    const l = new SoleLease("dispatcher");
    expect(l.held()).toBe(true);
    expect(l.status()).toMatchObject({ role: "single", epoch: 1 });
  });
});
