import { describe, expect, it } from "vitest";
import type { DispatcherRunner } from "../../src/autoscaler/dispatcher-types.js";
import type { KeyRecord } from "../../src/autoscaler/keys.js";
import { plan } from "../../src/autoscaler/plan.js";
import type { PlanInput, PlanTarget } from "../../src/autoscaler/plan.js";
import { planInput, waitingJob } from "./plan-input.js";
import type { ActionRunJob } from "../../src/forgejo/types.js";

/**
 * Table tests of plan(): for each thing the dispatcher may have said about a job's key, and each
 * shape of the observed world, the exact decision and the reason status shows for it.
 */
const NOW = Date.parse("2026-06-01T12:00:00Z");
const OBSERVED = NOW - 100;
const LINUX: PlanTarget = { name: "linux", labels: ["linux:host"], minIdle: 0 };

const input = (over: Partial<PlanInput> = {}): PlanInput => planInput(LINUX, NOW, over);

const job = waitingJob;
const unpinned = (id: number, extra: Partial<ActionRunJob> = {}) => job(id, { handle: undefined, ...extra });
const disp = (name: string, state: string, extra: Partial<DispatcherRunner> = {}): DispatcherRunner => ({
  name,
  state,
  reason: "",
  labels: ["linux"],
  scope_key: "instance",
  job: null,
  ...extra,
});

const BASE = "fj:job:5:h-5";
const book = (rec: Partial<KeyRecord>) =>
  new Map([[BASE, { gen: 0, status: "created", at: OBSERVED - 1, runners: ["r1"], ...rec } as KeyRecord]]);

describe("a job's key, from what the dispatcher said about it", () => {
  const cases: { what: string; rec?: Partial<KeyRecord>; inFlight?: DispatcherRunner[]; state: string; reason: string; key?: string }[] = [
    { what: "nothing yet", state: "dispatch", reason: "asking the dispatcher for a runner", key: BASE },
    {
      what: "an error, with its message",
      rec: { status: "error", gen: 0, message: "dispatcher error: ECONNREFUSED", runners: [] },
      state: "dispatch",
      reason: "asking the dispatcher for a runner (retrying after: dispatcher error: ECONNREFUSED)",
      key: BASE,
    },
    {
      what: "an error without a message, in generation 2",
      rec: { status: "error", gen: 2, runners: [] },
      state: "dispatch",
      reason: "asking the dispatcher for a runner (retrying after: dispatcher error)",
      key: `${BASE}:r2`,
    },
    {
      what: "a refusal 10 s ago",
      rec: { status: "rejected", at: NOW - 10_000, message: "dispatcher refused the request (403): label not allowed" },
      state: "refused",
      reason: "dispatcher refused the request (403): label not allowed; asking again in 50s",
    },
    {
      what: "a refusal without a message, 59 s ago",
      rec: { status: "rejected", at: NOW - 59_000 },
      state: "refused",
      reason: "dispatcher refused the request; asking again in 1s",
    },
    {
      what: "a refusal exactly a minute ago",
      rec: { status: "rejected", gen: 1, at: NOW - 60_000 },
      state: "dispatch",
      reason: "asking the dispatcher for a runner",
      key: `${BASE}:r1`,
    },
    {
      // Under labels the target no longer has (its config changed): not free runners of this target.
      what: "runners still alive",
      rec: { status: "live", runners: ["r8", "r9"] },
      inFlight: [disp("r8", "pending", { labels: ["linux", "old"] }), disp("r9", "running", { labels: ["linux", "old"] })],
      state: "in_flight",
      reason: "runner r8, r9 on its way",
    },
    {
      what: "only the alive ones of its runners",
      rec: { status: "live", runners: ["r7", "r8", "r9"] },
      inFlight: [disp("r7", "finishing"), disp("r9", "launching", { labels: ["linux", "old"] })],
      state: "in_flight",
      reason: "runner r9 on its way",
    },
    {
      what: "a runner asked for at the moment the dispatcher was read",
      rec: { status: "created", at: OBSERVED },
      state: "requested",
      reason: "runner requested; waiting for the dispatcher to report it",
    },
    {
      what: "a runner (known before the look) that ended without the job",
      rec: { status: "terminal", at: OBSERVED - 1 },
      state: "dispatch",
      reason: "asking the dispatcher for a runner (runner r1 ended without taking this job)",
      key: `${BASE}:r1`,
    },
    {
      what: "a finishing runner of its key",
      rec: { status: "live", runners: ["r1"] },
      inFlight: [disp("r1", "finishing")],
      state: "dispatch",
      reason: "asking the dispatcher for a runner (runner r1 ended without taking this job)",
      key: `${BASE}:r1`,
    },
    {
      what: "generation 1 ended 5 s ago, runner unknown",
      rec: { status: "terminal", gen: 1, at: NOW - 5_000, runners: [] },
      state: "backoff",
      reason: "the previous runner ended without taking this job; asking for another in 10s",
    },
    {
      what: "generation 1 ended 15 s ago",
      rec: { status: "terminal", gen: 1, at: NOW - 15_000, runners: ["r1", "r2"] },
      state: "dispatch",
      reason: "asking the dispatcher for a runner (runner r1, r2 ended without taking this job)",
      key: `${BASE}:r2`,
    },
    {
      what: "generation 3 ended 59.6 s ago",
      rec: { status: "terminal", gen: 3, at: NOW - 59_600, runners: ["r3"] },
      state: "backoff",
      reason: "runner r3 ended without taking this job; asking for another in 0s",
    },
  ];

  it.each(cases)("$what → $state", ({ rec, inFlight = [], state, reason, key }) => {
    const p = plan(input({ jobs: [job(5)], book: rec ? book(rec) : new Map(), inFlight }));
    expect(p.jobs).toHaveLength(1);
    expect(p.jobs[0]).toMatchObject({ id: 5, state, reason });
    expect(p.jobs[0]!.key).toBe(key);
    if (key) {
      const gen = key === BASE ? 0 : Number(key.slice(-1));
      expect(p.intents).toEqual([
        { key, target: "linux", count: 1, kind: "job", job: { id: 5, attempt: 1, handle: "h-5" }, forJob: 5, baseKey: BASE, gen },
      ]);
    } else {
      expect(p.intents).toEqual([]);
    }
  });

  // Without handles an alive runner is simply free, so the in-flight rows do not apply.
  it.each(cases.filter((c) => c.state !== "in_flight"))("without handles: $what → $state", ({ rec, inFlight = [], state, reason, key }) => {
    const base = "fj:job:5:1";
    const p = plan(
      input({
        handles: false,
        registered: undefined,
        jobs: [unpinned(5)],
        book: rec ? new Map([[base, { ...book(rec).get(BASE)! }]]) : new Map(),
        inFlight,
      }),
    );
    expect(p.jobs[0]).toMatchObject({ state, reason });
    expect(p.jobs[0]!.key).toBe(key?.replace(BASE, base));
    expect(p.intents.map((i) => [i.key, i.job])).toEqual(key ? [[key.replace(BASE, base), undefined]] : []);
  });
});

describe("pinned runners (Forgejo >= 15)", () => {
  it.each([
    ["pinned to the job and its handle", { id: 5, attempt: 1, handle: "h-5" }, "launching", true],
    ["pinned to the job without a handle", { id: 5, attempt: 1 }, "running", true],
    ["pinned to another attempt's handle", { id: 5, attempt: 0, handle: "h-old" }, "running", false],
    ["pinned to another job", { id: 6, attempt: 1, handle: "h-5" }, "running", false],
    ["pinned to the job but finishing", { id: 5, attempt: 1, handle: "h-5" }, "finishing", false],
  ] as const)("a runner %s covers it: %s", (_what, pinnedJob, state, covers) => {
    const p = plan(input({ jobs: [job(5)], inFlight: [disp("p1", state, { job: pinnedJob })] }));
    expect(p.jobs[0]!.state).toBe(covers ? "in_flight" : "dispatch");
    expect(p.intents).toHaveLength(covers ? 0 : 1);
  });

  it.each([
    [{ updated_at: new Date(NOW - 12_400).toISOString(), created_at: new Date(NOW - 60_000).toISOString() }, "runner p1 running since 12s"],
    [{ created_at: new Date(NOW - 60_000).toISOString() }, "runner p1 running since 60s"],
    [{ updated_at: new Date(NOW + 5_000).toISOString() }, "runner p1 running since 0s"],
    [{ updated_at: "not a date" }, "runner p1 running"],
    [{}, "runner p1 running"],
  ])("says since when the runner is in its state: %o", (times, reason) => {
    const p = plan(input({ jobs: [job(5)], inFlight: [disp("p1", "running", { job: { id: 5, attempt: 1, handle: "h-5" }, ...times })] }));
    expect(p.jobs[0]!.reason).toBe(reason);
  });

  it("a job without a handle is served like on servers without handles", () => {
    const p = plan(input({ jobs: [job(4), unpinned(5)] }));
    expect(p.intents.map((i) => [i.key, i.job?.id])).toEqual([
      ["fj:job:4:h-4", 4],
      ["fj:job:5:1", undefined],
    ]);
  });
});

describe("what plan reports per job", () => {
  it("every waiting job once, oldest first, with its runs-on names, attempt, handle and target", () => {
    const p = plan(
      input({
        targets: [LINUX, { name: "gpu", labels: ["gpu", "linux"], minIdle: 0 }],
        jobs: [
          job(9, { runs_on: ["gpu:docker://x", "linux"] }),
          job(3, { status: "queued", runs_on: ["linux", "linux:host"] }),
          job(3, { status: "queued", runs_on: ["linux", "linux:host"] }),
          job(4, { status: "running" }),
          job(7, { runs_on: ["tpu"], attempt: 2, handle: undefined }),
          job(8, { runs_on: null as unknown as string[] }),
        ],
      }),
    );
    expect(p.jobs.map((j) => [j.id, j.runs_on, j.target, j.state, j.attempt, j.handle])).toEqual([
      [3, ["linux"], "linux", "dispatch", 1, "h-3"],
      [7, ["tpu"], null, "unmatched", 2, undefined],
      [8, [], "linux", "dispatch", 1, "h-8"],
      [9, ["gpu", "linux"], "gpu", "dispatch", 1, "h-9"],
    ]);
    expect(p.jobs[1]!.reason).toBe("no target matches [tpu]");
    expect(p.intents.map((i) => [i.target, i.forJob])).toEqual([
      ["linux", 3],
      ["linux", 8],
      ["gpu", 9],
    ]);
    expect(p.targets.map((t) => [t.name, t.jobIntents, t.waiting])).toEqual([
      ["linux", 2, 2],
      ["gpu", 1, 1],
    ]);
  });

  it("per target: labels, waiting and running jobs, idle, in flight, free, min_idle, max_runners and intents", () => {
    const targets: PlanTarget[] = [
      { name: "linux", labels: ["linux:host"], minIdle: 2, maxRunners: 5 },
      { name: "gpu", labels: ["gpu"], minIdle: 0 },
    ];
    const p = plan(
      input({
        targets,
        handles: false,
        jobs: [unpinned(1), unpinned(2), unpinned(3, { status: "running" })],
        registered: [{ id: 1, name: "idle1", status: "idle", labels: ["linux"] }],
        inFlight: [disp("busy", "running", { job: { id: 40, attempt: 1 } })],
      }),
    );
    expect(p.targets).toEqual([
      {
        name: "linux",
        labels: ["linux:host"],
        waiting: 2,
        running: 1,
        idle: 1,
        inFlight: 1,
        free: 1,
        minIdle: 2,
        maxRunners: 5,
        jobIntents: 1,
        warmIntents: 2,
        warmNote: undefined,
      },
      {
        name: "gpu",
        labels: ["gpu"],
        waiting: 0,
        running: 0,
        idle: 0,
        inFlight: 0,
        free: 0,
        minIdle: 0,
        maxRunners: null,
        jobIntents: 0,
        warmIntents: 0,
        warmNote: undefined,
      },
    ]);
    expect(p.intents.map((i) => i.kind)).toEqual(["job", "warm", "warm"]);
  });
});

describe("without handles, how many runners", () => {
  it("asks for waiting − free, keys from the newest jobs; the older ones wait for the free runners", () => {
    const p = plan(
      input({
        handles: false,
        registered: undefined,
        jobs: [1, 2, 3, 4].map((id) => unpinned(id)),
        inFlight: [disp("a", "pending"), disp("b", "running")],
      }),
    );
    expect(p.intents.map((i) => i.key)).toEqual(["fj:job:4:1", "fj:job:3:1"]);
    expect(p.jobs.map((j) => [j.id, j.state, j.reason])).toEqual([
      [1, "covered", "waiting for one of 2 idle or starting runner(s) of target linux"],
      [2, "covered", "waiting for one of 2 idle or starting runner(s) of target linux"],
      [3, "dispatch", "asking the dispatcher for a runner"],
      [4, "dispatch", "asking the dispatcher for a runner"],
    ]);
  });

  it("a job in backoff or refused does not hold back the next one", () => {
    const p = plan(
      input({
        handles: false,
        registered: undefined,
        jobs: [unpinned(1), unpinned(2)],
        book: new Map([["fj:job:2:1", { gen: 0, status: "rejected", at: NOW - 1_000, runners: [], message: "no" }]]),
      }),
    );
    expect(p.jobs.map((j) => [j.id, j.state])).toEqual([
      [1, "dispatch"],
      [2, "refused"],
    ]);
    expect(p.intents.map((i) => i.key)).toEqual(["fj:job:1:1"]);
  });

  it("at max_runners the remaining jobs say so", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux"], minIdle: 0, maxRunners: 2 }];
    const p = plan(
      input({
        targets,
        handles: false,
        registered: undefined,
        jobs: [1, 2, 3].map((id) => unpinned(id)),
        inFlight: [disp("x", "running", { job: { id: 50 } })],
      }),
    );
    expect(p.intents.map((i) => i.forJob)).toEqual([3]);
    expect(p.jobs.map((j) => [j.id, j.state])).toEqual([
      [1, "at_cap"],
      [2, "at_cap"],
      [3, "dispatch"],
    ]);
    expect(p.jobs[0]!.reason).toBe("at cap: target linux has 1 runner(s) in flight, max_runners 2");
  });
});

describe("warm pools", () => {
  it("tops up what stays free after the waiting jobs, reusing unanswered keys first", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux"], minIdle: 3 }];
    const p = plan(
      input({
        targets,
        handles: false,
        registered: undefined,
        jobs: [unpinned(1)],
        inFlight: [disp("w1", "running"), disp("w2", "pending"), disp("w3", "launching")],
        warm: {
          boot: "b",
          nextSeq: 7,
          outstanding: new Map([
            ["linux", ["fj:warm:linux:b-2"]],
            ["other", ["fj:warm:other:b-1"]],
          ]),
        },
      }),
    );
    // Three free, one taken by job 1: one short of three.
    expect(p.intents.map((i) => [i.key, i.kind])).toEqual([["fj:warm:linux:b-2", "warm"]]);
    expect(p.warmSeqUsed).toBe(0);
  });

  it("numbers new slots from nextSeq and reports how many it used", () => {
    const targets: PlanTarget[] = [
      { name: "a", labels: ["a"], minIdle: 2 },
      { name: "b", labels: ["b"], minIdle: 1 },
    ];
    const p = plan(input({ targets, warm: { boot: "b", nextSeq: 7, outstanding: new Map() } }));
    expect(p.intents.map((i) => [i.key, i.target])).toEqual([
      ["fj:warm:a:b-7", "a"],
      ["fj:warm:a:b-8", "a"],
      ["fj:warm:b:b-9", "b"],
    ]);
    expect(p.warmSeqUsed).toBe(3);
  });

  it("stops at max_runners and says how many warm runners are short", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux"], minIdle: 3, maxRunners: 2 }];
    const p = plan(input({ targets }));
    expect(p.intents).toHaveLength(2);
    expect(p.targets[0]!.warmNote).toBe("1 warm runner(s) short: at cap: target linux has 0 runner(s) in flight, max_runners 2");
    const full = plan(input({ targets, inFlight: [disp("x", "running", { job: { id: 1 } }), disp("y", "running", { job: { id: 2 } })] }));
    expect(full.intents).toEqual([]);
    expect(full.targets[0]!.warmNote).toBe("3 warm runner(s) short: at cap: target linux has 2 runner(s) in flight, max_runners 2");
  });

  it("reserves room for jobs only where runners are pinned: without handles the job's own runner comes first", () => {
    // A job that carries a handle, on a server the planner does not pin on (handles off).
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux"], minIdle: 1, maxRunners: 1 }];
    const p = plan(input({ targets, handles: false, registered: undefined, jobs: [job(1)] }));
    expect(p.intents.map((i) => [i.kind, i.key])).toEqual([["job", "fj:job:1:h-1"]]);
    expect(p.targets[0]!.warmNote).toBe("1 warm runner(s) short: at cap: target linux has 0 runner(s) in flight, max_runners 1");
  });

  it("has no note when max_runners leaves exactly enough room", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux"], minIdle: 2, maxRunners: 2 }];
    const p = plan(input({ targets }));
    expect(p.intents).toHaveLength(2);
    expect(p.targets[0]!.warmNote).toBeUndefined();
  });

  it("has no note when the pool is full, even when the runner list failed", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux"], minIdle: 1 }];
    const p = plan(input({ targets, registered: undefined, registeredFailed: true, inFlight: [disp("w", "running")] }));
    expect(p.intents).toEqual([]);
    expect(p.targets[0]!.warmNote).toBeUndefined();
  });
});
