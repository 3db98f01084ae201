import { describe, expect, it } from "vitest";
import { asksForgejo, endedOutcome, judgeRunners, unexplainedInstances } from "../../src/dispatcher/judge.js";
import type { Ending, JudgeInput } from "../../src/dispatcher/judge.js";
import { LABEL_OWNER, LABEL_RUNNER } from "../../src/namespace/launcher.js";
import type { InstanceInfo } from "../../src/namespace/launcher.js";
import { Sightings } from "../../src/shared/sightings.js";
import type { RunnerRecord } from "../../src/store/types.js";
import { T0, dispatchWith, iso } from "../store/records.js";

/**
 * Table tests of the supervisor's decisions from plain data: which runners end on a look and why
 * (judgeRunners), how an instance that ended on its own ends its runner (endedOutcome), and which
 * instances no record explains (unexplainedInstances).
 */
const NOW = T0 + 60_000;

function runner(name: string, over: Partial<RunnerRecord> = {}): RunnerRecord {
  const [r] = dispatchWith({
    id: `d-${name}`,
    names: [name],
    runner: { state: "running", instanceId: `i-${name}`, expiresAt: iso(3_600_000), ...over },
  }).runners;
  return r as RunnerRecord;
}

/** One look: the runners, which of their instances the listing shows, and the misses before it. */
function look(over: Partial<JudgeInput> & { missedBefore?: string[] } = {}): {
  endings: { name: string; why: Ending["why"]; outcome?: unknown }[];
  missesAfter: Sightings;
} {
  const { missedBefore = [], ...rest } = over;
  const misses = new Sightings();
  for (const name of missedBefore) misses.see(name);
  const endings = judgeRunners({ runners: [], alive: new Set(), consumed: new Set(), now: NOW, misses, ...rest });
  return {
    endings: endings.map((e) => ({ name: e.runner.name, why: e.why, ...("outcome" in e ? { outcome: e.outcome } : {}) })),
    missesAfter: misses,
  };
}

describe("judgeRunners: one runner, one look", () => {
  const cases: {
    what: string;
    r: Partial<RunnerRecord>;
    alive?: boolean;
    consumed?: boolean;
    missedBefore?: boolean;
    ends?: Ending["why"];
    outcome?: unknown;
    missing?: boolean;
  }[] = [
    { what: "running, its instance listed", r: {}, alive: true },
    { what: "running, its instance missing once", r: {}, missing: true },
    { what: "running, its instance missing twice in a row", r: {}, missedBefore: true, ends: "instance-ended" },
    { what: "running, listed again after one miss", r: {}, alive: true, missedBefore: true },
    {
      what: "running, listed, its registration consumed",
      r: {},
      alive: true,
      consumed: true,
      ends: "consumed",
      outcome: { to: "done", reason: "job finished: Forgejo removed the ephemeral runner; instance i-r destroyed" },
    },
    // A consumed registration says nothing while the instance is missing: the misses decide.
    { what: "running, missing once, its registration consumed", r: {}, consumed: true, missing: true },
    {
      what: "running, TTL reached (listed)",
      r: { expiresAt: iso(60_000) },
      alive: true,
      ends: "ttl",
      outcome: { to: "failed", reason: "TTL 30m0s reached before the job finished; instance destroyed" },
    },
    {
      what: "running, TTL reached (missing)",
      r: { expiresAt: iso(60_000), ttlMs: 90_000 },
      ends: "ttl",
      outcome: { to: "failed", reason: "TTL 1m30s reached before the job finished; instance destroyed" },
    },
    { what: "running, a millisecond before its TTL", r: { expiresAt: iso(60_001) }, alive: true },
    { what: "running without an expiry", r: { expiresAt: undefined }, alive: true },
    { what: "running without an instance id", r: { instanceId: undefined } },
    { what: "finishing", r: { state: "finishing" }, ends: "finishing" },
    { what: "finishing, its instance listed", r: { state: "finishing" }, alive: true, ends: "finishing" },
    { what: "launching (its instance not listed yet)", r: { state: "launching" }, missedBefore: true },
    { what: "pending", r: { state: "pending", instanceId: undefined } },
  ];
  it.each(cases)("$what → ends: $ends", ({ r, alive, consumed, missedBefore, ends, outcome, missing }) => {
    const rec = runner("r", r);
    const { endings, missesAfter } = look({
      runners: [rec],
      alive: new Set(alive && rec.instanceId ? [rec.instanceId] : []),
      consumed: new Set(consumed ? ["r"] : []),
      missedBefore: missedBefore ? ["r"] : [],
    });
    expect(endings).toEqual(ends ? [{ name: "r", why: ends, ...(outcome ? { outcome } : {}) }] : []);
    // Only a first miss is remembered for the next look; anything else starts over.
    expect(missesAfter.size).toBe(missing ? 1 : 0);
  });
});

describe("judgeRunners: misses across looks", () => {
  it("a runner missed, then absent from a look (cancelled, or not running), then missed again has missed once", () => {
    const misses = new Sightings();
    const r = runner("r");
    const judge = (runners: RunnerRecord[]) =>
      judgeRunners({ runners, alive: new Set(), consumed: new Set(), now: NOW, misses }).map((e) => e.runner.name);
    expect(judge([r])).toEqual([]);
    expect(judge([])).toEqual([]);
    expect(judge([r])).toEqual([]);
    expect(judge([r])).toEqual(["r"]);
  });

  it("forgets a runner once its miss is confirmed, and remembers the others' first misses", () => {
    const misses = new Sightings();
    const [a, b] = [runner("a"), runner("b")];
    expect(judgeRunners({ runners: [a], alive: new Set(), consumed: new Set(), now: NOW, misses })).toEqual([]);
    const endings = judgeRunners({ runners: [a, b], alive: new Set(), consumed: new Set(), now: NOW, misses });
    expect(endings.map((e) => e.runner.name)).toEqual(["a"]);
    expect(misses.size).toBe(1);
    expect(judgeRunners({ runners: [b], alive: new Set(), consumed: new Set(), now: NOW, misses }).map((e) => e.runner.name)).toEqual([
      "b",
    ]);
  });

  it("keeps the order of the records", () => {
    const rs = [runner("c", { state: "finishing" }), runner("a", { expiresAt: iso(0) }), runner("b")];
    const { endings } = look({ runners: rs, missedBefore: ["b"] });
    expect(endings.map((e) => e.name)).toEqual(["c", "a", "b"]);
  });
});

describe("endedOutcome: an instance that ended on its own", () => {
  const cases: {
    what: string;
    r: Partial<RunnerRecord>;
    asks: boolean;
    registration: "removed" | "kept" | { error: string } | undefined;
    to: string;
    reason: string;
  }[] = [
    {
      what: "a token-mode runner",
      r: { registration: "token", forgejoRunnerId: 7 },
      asks: false,
      registration: undefined,
      to: "done",
      reason: "instance i-r ended: forgejo-runner exited",
    },
    {
      what: "an ephemeral runner without an id",
      r: { registration: "ephemeral" },
      asks: false,
      registration: undefined,
      to: "done",
      reason: "instance i-r ended: forgejo-runner exited",
    },
    {
      what: "a runner without a registration mode",
      r: { forgejoRunnerId: 7 },
      asks: false,
      registration: undefined,
      to: "done",
      reason: "instance i-r ended: forgejo-runner exited",
    },
    {
      what: "an ephemeral runner whose registration Forgejo removed",
      r: { registration: "ephemeral", forgejoRunnerId: 0 },
      asks: true,
      registration: "removed",
      to: "done",
      reason: "instance i-r ended after its job finished",
    },
    {
      what: "an ephemeral runner whose registration is still there",
      r: { registration: "ephemeral", forgejoRunnerId: 7 },
      asks: true,
      registration: "kept",
      to: "failed",
      reason: "instance i-r ended before forgejo-runner finished a job; registration removed",
    },
    {
      what: "an ephemeral runner Forgejo could not be asked about",
      r: { registration: "ephemeral", forgejoRunnerId: 7 },
      asks: true,
      registration: { error: "HTTP 500" },
      to: "done",
      reason: "instance i-r ended (could not ask Forgejo whether the job ran: HTTP 500)",
    },
  ];
  it.each(cases)("$what → $to", ({ r, asks, registration, to, reason }) => {
    const rec = runner("r", r);
    expect(asksForgejo(rec)).toBe(asks);
    expect(endedOutcome(rec, registration)).toEqual({ to, reason });
  });
});

describe("unexplainedInstances", () => {
  const inst = (id: string, runnerName?: string): InstanceInfo => ({
    instanceId: id,
    labels: { [LABEL_OWNER]: "default", ...(runnerName ? { [LABEL_RUNNER]: runnerName } : {}) },
  });
  const cases: { what: string; r?: Partial<RunnerRecord>; launching?: boolean; unexplained: boolean }[] = [
    { what: "no record of its name", unexplained: true },
    { what: "its runner's recorded instance", r: {}, unexplained: false },
    { what: "its finishing runner's recorded instance", r: { state: "finishing" }, unexplained: false },
    { what: "another instance than its running runner's", r: { instanceId: "other" }, unexplained: true },
    {
      what: "a launch in flight's (another instance recorded)",
      r: { state: "launching", instanceId: "other" },
      launching: true,
      unexplained: false,
    },
    { what: "an interrupted launch's without an instance id", r: { state: "launching", instanceId: undefined }, unexplained: false },
    { what: "an interrupted launch's that recorded another instance", r: { state: "launching", instanceId: "other" }, unexplained: true },
    { what: "a finishing runner's without an instance id", r: { state: "finishing", instanceId: undefined }, unexplained: true },
  ];
  it.each(cases)("$what → unexplained: $unexplained", ({ r, launching, unexplained }) => {
    const runners = r ? [runner("r", { instanceId: "i-r", ...r })] : [];
    const found = unexplainedInstances([inst("i-r", "r")], runners, (name) => launching === true && name === "r");
    expect(found.map((i) => i.instanceId)).toEqual(unexplained ? ["i-r"] : []);
  });

  it("an instance without a runner label is unexplained", () => {
    expect(unexplainedInstances([inst("bare")], [runner("r")], () => true).map((i) => i.instanceId)).toEqual(["bare"]);
  });
});
