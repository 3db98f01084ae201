import { describe, expect, it } from "vitest";
import type { DispatcherRunner } from "../../src/autoscaler/dispatcher-types.js";
import type { KeyRecord } from "../../src/autoscaler/keys.js";
import { plan } from "../../src/autoscaler/plan.js";
import type { PlanInput, PlanTarget } from "../../src/autoscaler/plan.js";
import type { ActionRunJob, ActionRunner } from "../../src/forgejo/types.js";

const NOW = Date.parse("2026-06-01T12:00:00Z");

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    instance: "fj",
    now: NOW,
    observedAt: NOW - 100,
    targets: [{ name: "linux", labels: ["linux:host", "docker"], minIdle: 0 }],
    jobs: [],
    handles: true,
    registered: [],
    inFlight: [],
    book: new Map(),
    warm: { boot: "b00t", nextSeq: 0, outstanding: new Map() },
    ...over,
  };
}

const job = (id: number, runsOn: string[] = ["linux"], extra: Partial<ActionRunJob> = {}): ActionRunJob => ({
  id,
  runs_on: runsOn,
  status: "waiting",
  attempt: 0,
  handle: `h-${id}`,
  ...extra,
});

const disp = (name: string, state: string, extra: Partial<DispatcherRunner> = {}): DispatcherRunner => ({
  name,
  state,
  reason: "",
  labels: ["linux:host", "docker"],
  scope_key: "instance",
  job: null,
  created_at: new Date(NOW - 30_000).toISOString(),
  updated_at: new Date(NOW - 12_000).toISOString(),
  ...extra,
});

const reg = (name: string, status: string, labels = ["linux", "docker"]): ActionRunner => ({ id: name.length, name, status, labels });

describe("plan with job handles (Forgejo >= 15)", () => {
  it("gives each waiting job exactly one pinned intent keyed by instance, job id and handle", () => {
    const p = plan(input({ jobs: [job(7), job(5)] }));
    expect(p.intents).toEqual([
      {
        key: "fj:job:5:h-5",
        target: "linux",
        count: 1,
        kind: "job",
        job: { id: 5, attempt: 0, handle: "h-5" },
        forJob: 5,
        baseKey: "fj:job:5:h-5",
        gen: 0,
      },
      {
        key: "fj:job:7:h-7",
        target: "linux",
        count: 1,
        kind: "job",
        job: { id: 7, attempt: 0, handle: "h-7" },
        forJob: 7,
        baseKey: "fj:job:7:h-7",
        gen: 0,
      },
    ]);
    expect(p.jobs.map((j) => j.state)).toEqual(["dispatch", "dispatch"]);
  });

  it("does not ask again for a job whose pinned runner is in flight, and says since when", () => {
    const p = plan(input({ jobs: [job(5)], inFlight: [disp("r1", "launching", { job: { id: 5, attempt: 0, handle: "h-5" } })] }));
    expect(p.intents).toEqual([]);
    expect(p.jobs[0]).toMatchObject({ id: 5, state: "in_flight", reason: "runner r1 launching since 12s" });
  });

  it("a runner pinned to an earlier attempt (other handle) does not count for the rerun", () => {
    const p = plan(
      input({
        jobs: [job(5, ["linux"], { attempt: 1, handle: "h-5b" })],
        inFlight: [disp("r1", "running", { job: { id: 5, attempt: 0, handle: "h-5" } })],
      }),
    );
    expect(p.intents.map((i) => i.key)).toEqual(["fj:job:5:h-5b"]);
  });

  it("ignores running jobs and dedupes jobs listed twice", () => {
    const p = plan(input({ jobs: [job(5), job(5), job(6, ["linux"], { status: "running" })] }));
    expect(p.intents.map((i) => i.forJob)).toEqual([5]);
    expect(p.targets[0]).toMatchObject({ waiting: 1, running: 1 });
  });

  it("reports jobs no target fits instead of dropping them", () => {
    const p = plan(input({ jobs: [job(5, ["gpu"]), job(6)] }));
    expect(p.intents.map((i) => i.forJob)).toEqual([6]);
    expect(p.jobs.find((j) => j.id === 5)).toMatchObject({ target: null, state: "unmatched", reason: "no target matches [gpu]" });
  });
});

describe("plan without handles (Forgejo 11–14, Gitea)", () => {
  it("asks for waiting − free runners, keyed by the newest uncovered jobs", () => {
    const p = plan(
      input({
        handles: false,
        registered: undefined,
        jobs: [
          job(1, ["linux"], { handle: undefined, attempt: undefined }),
          job(2, ["linux"], { handle: undefined }),
          job(3, ["linux"], { handle: undefined, attempt: 2 }),
        ],
        inFlight: [disp("r1", "pending")],
      }),
    );
    expect(p.intents.map((i) => [i.key, i.job])).toEqual([
      ["fj:job:3:2", undefined],
      ["fj:job:2:0", undefined],
    ]);
    expect(p.jobs.find((j) => j.id === 1)).toMatchObject({
      state: "covered",
      reason: "waiting for one of 1 idle or starting runner(s) of target linux",
    });
  });

  it("without a runner list, running jobs are taken to occupy live unpinned runners", () => {
    const p = plan(
      input({
        handles: false,
        registered: undefined,
        jobs: [job(1, ["linux"], { handle: undefined }), job(2, ["linux"], { handle: undefined, status: "running" })],
        inFlight: [disp("r1", "running"), disp("r2", "running")],
      }),
    );
    // Two runners live, one busy with job 2: one is free for job 1.
    expect(p.intents).toEqual([]);
    expect(p.targets[0]).toMatchObject({ free: 1, running: 1, idle: null, inFlight: 2 });
  });

  it("counts idle registered runners (static ones too) and not active ones (Gitea runner list)", () => {
    const p = plan(
      input({
        handles: false,
        jobs: [1, 2, 3].map((id) => job(id, ["linux"], { handle: undefined })),
        registered: [reg("static-1", "idle"), reg("r1", "active"), reg("r2", "idle"), reg("other", "idle", ["windows"])],
        inFlight: [disp("r1", "running"), disp("r2", "running"), disp("r3", "launching")],
      }),
    );
    // free: static-1 (idle), r2 (idle), r3 (not registered yet) = 3; r1 busy.
    expect(p.targets[0]).toMatchObject({ free: 3, idle: 2 });
    expect(p.intents).toEqual([]);
  });
});

describe("warm pools", () => {
  it("tops up to min_idle with warm keys, reusing keys left unanswered by the dispatcher", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux", "docker"], minIdle: 3 }];
    const p = plan(input({ targets, warm: { boot: "b00t", nextSeq: 4, outstanding: new Map([["linux", ["fj:warm:linux:b00t-1"]]]) } }));
    expect(p.intents.map((i) => [i.key, i.kind])).toEqual([
      ["fj:warm:linux:b00t-1", "warm"],
      ["fj:warm:linux:b00t-4", "warm"],
      ["fj:warm:linux:b00t-5", "warm"],
    ]);
    expect(p.warmSeqUsed).toBe(2);
  });

  it("counts idle and starting unpinned runners as warm; pinned ones are not", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux", "docker"], minIdle: 2 }];
    const p = plan(
      input({
        targets,
        registered: [reg("w1", "idle")],
        inFlight: [disp("w1", "running"), disp("p1", "running", { job: { id: 9, attempt: 1, handle: "x" } })],
      }),
    );
    expect(p.intents.filter((i) => i.kind === "warm")).toHaveLength(1);
  });

  it("without handles, waiting jobs consume free runners before the pool counts as warm", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux", "docker"], minIdle: 2 }];
    const p = plan(
      input({
        targets,
        handles: false,
        registered: undefined,
        jobs: [job(1, ["linux"], { handle: undefined })],
        inFlight: [disp("w1", "pending")],
      }),
    );
    // w1 takes job 1; two more keep the pool at 2.
    expect(p.intents.map((i) => i.kind)).toEqual(["warm", "warm"]);
  });

  it("skips the top-up when the runner list failed this pass, and says so", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux", "docker"], minIdle: 2 }];
    const p = plan(input({ targets, registered: undefined, registeredFailed: true }));
    expect(p.intents).toEqual([]);
    expect(p.targets[0]!.warmNote).toMatch(/runner list unavailable/);
  });
});

describe("max_runners", () => {
  it("serves the oldest jobs first, then the warm pool, and names the cap for the rest", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux", "docker"], minIdle: 2, maxRunners: 3 }];
    const p = plan(
      input({ targets, jobs: [job(3), job(1), job(2)], inFlight: [disp("busy", "running", { job: { id: 99, attempt: 1, handle: "z" } })] }),
    );
    // The pool's two runners, asked for now, take the two oldest jobs (none gets a pinned runner too).
    expect(p.intents.map((i) => i.kind)).toEqual(["warm", "warm"]);
    expect(p.jobs.filter((j) => j.id !== 3).map((j) => [j.id, j.state, j.reason])).toEqual([
      [1, "covered", "waiting for one of 2 warm runner(s) of target linux asked for now"],
      [2, "covered", "waiting for one of 2 warm runner(s) of target linux asked for now"],
    ]);
    expect(p.jobs.find((j) => j.id === 3)).toMatchObject({
      state: "at_cap",
      reason: "at cap: target linux has 1 runner(s) in flight, max_runners 3",
    });
    expect(p.targets[0]).toMatchObject({ jobIntents: 0, warmIntents: 2, maxRunners: 3 });
    // Room for more: jobs first, then the pool, which says it is short.
    const roomier = plan(
      input({
        targets: [{ ...targets[0]!, minIdle: 1 }],
        jobs: [job(3), job(1), job(2)],
        inFlight: [disp("busy", "running", { job: { id: 99, attempt: 1, handle: "z" } })],
      }),
    );
    expect(roomier.intents.map((i) => [i.kind, i.forJob])).toEqual([
      ["job", 2],
      ["warm", undefined],
    ]);
    expect(roomier.jobs.find((j) => j.id === 3)!.state).toBe("at_cap");
  });

  it("counts finishing runners against the cap (their instances still exist)", () => {
    const targets: PlanTarget[] = [{ name: "linux", labels: ["linux", "docker"], minIdle: 0, maxRunners: 1 }];
    const p = plan(input({ targets, jobs: [job(1)], inFlight: [disp("old", "finishing", { job: { id: 0, attempt: 1, handle: "q" } })] }));
    expect(p.intents).toEqual([]);
    expect(p.jobs[0]!.state).toBe("at_cap");
  });
});

describe("key generations from the dispatcher's answers", () => {
  const base = "fj:job:5:h-5";
  const rec = (r: Partial<KeyRecord>): Map<string, KeyRecord> =>
    new Map([[base, { gen: 0, status: "created", at: NOW - 60_000, runners: ["r1"], ...r }]]);

  it("a runner that ended without taking the job (known before this look) gets a new generation at once", () => {
    const p = plan(input({ jobs: [job(5)], book: rec({ status: "terminal" }) }));
    expect(p.intents.map((i) => i.key)).toEqual([`${base}:r1`]);
    expect(p.jobs[0]!.reason).toMatch(/runner r1 ended without taking this job/);
  });

  it("later generations wait (backoff), with the wait in the reason", () => {
    const p = plan(input({ jobs: [job(5)], book: rec({ gen: 1, status: "terminal", at: NOW - 5_000 }) }));
    expect(p.intents).toEqual([]);
    expect(p.jobs[0]).toMatchObject({ state: "backoff", reason: "runner r1 ended without taking this job; asking for another in 10s" });
  });

  it("learned after the dispatcher was read: do not guess, wait for the next look", () => {
    const p = plan(input({ jobs: [job(5)], book: rec({ status: "created", at: NOW - 50 }) }));
    expect(p.intents).toEqual([]);
    expect(p.jobs[0]!.state).toBe("requested");
  });

  it("a request that did not get through is retried with the same key", () => {
    const p = plan(input({ jobs: [job(5)], book: rec({ status: "error", runners: [], message: "dispatcher error: down" }) }));
    expect(p.intents.map((i) => i.key)).toEqual([base]);
  });

  it("a refused request is asked again only after a minute", () => {
    const refused = plan(
      input({ jobs: [job(5)], book: rec({ status: "rejected", at: NOW - 10_000, message: "dispatcher refused the request (403): no" }) }),
    );
    expect(refused.intents).toEqual([]);
    expect(refused.jobs[0]).toMatchObject({ state: "refused", reason: "dispatcher refused the request (403): no; asking again in 50s" });
    const later = plan(input({ jobs: [job(5)], book: rec({ status: "rejected", at: NOW - 61_000 }) }));
    expect(later.intents.map((i) => i.key)).toEqual([base]);
  });

  it("without handles, a job whose runner was requested after the dispatcher was read counts as served (no second request)", () => {
    const jobs = [1, 2, 3].map((id) => job(id, ["linux"], { handle: undefined }));
    // One starting runner (free) for three jobs: two more are needed. Job 3's runner was asked for
    // after this pass read the dispatcher, so it is not in `free` yet but will take a job.
    const p = plan(
      input({
        handles: false,
        registered: undefined,
        jobs,
        inFlight: [disp("r1", "pending")],
        book: new Map([["fj:job:3:0", { gen: 0, status: "created", at: NOW - 50, runners: ["r-new"] }]]),
      }),
    );
    expect(p.intents.map((i) => i.key)).toEqual(["fj:job:2:0"]);
    expect(p.jobs.map((j) => [j.id, j.state])).toEqual([
      [1, "covered"],
      [2, "dispatch"],
      [3, "requested"],
    ]);
    expect(p.jobs.find((j) => j.id === 3)!.reason).toBe("runner requested; waiting for the dispatcher to report it");
  });

  it("without handles, a job whose own runner is alive is covered and the next job gets the runner", () => {
    const p = plan(
      input({
        handles: false,
        registered: undefined,
        jobs: [job(1, ["linux"], { handle: undefined }), job(2, ["linux"], { handle: undefined })],
        // r9 (for job 2's key) is alive but, say, busy elsewhere is unknown: it counts as free.
        inFlight: [disp("r9", "pending")],
        book: new Map([["fj:job:2:0", { gen: 0, status: "live", at: NOW - 60_000, runners: ["r9"] }]]),
      }),
    );
    expect(p.intents.map((i) => i.key)).toEqual(["fj:job:1:0"]);
    expect(p.jobs.find((j) => j.id === 2)).toMatchObject({ state: "covered", reason: "runner r9 on its way" });
  });
});
