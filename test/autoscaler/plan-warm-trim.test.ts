import { describe, expect, it } from "vitest";
import type { DispatcherRunner } from "../../src/autoscaler/dispatcher-types.js";
import { plan } from "../../src/autoscaler/plan.js";
import type { PlanInput, PlanTarget } from "../../src/autoscaler/plan.js";
import { planInput, waitingJob } from "./plan-input.js";
import type { ActionRunJob, ActionRunner } from "../../src/forgejo/types.js";

/**
 * Issue 13 item 3: warm pools shrink, idle runners near their deadline retire, and a job a free
 * runner will take gets no pinned runner of its own. Table tests on the pure planner.
 */
const NOW = Date.parse("2026-06-01T12:00:00Z");
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();
const T: PlanTarget = { name: "linux", labels: ["linux"], minIdle: 0, warmIdleTimeoutMs: 5 * MIN, warmRetireBeforeMs: 10 * MIN };

const input = (over: Partial<PlanInput> = {}): PlanInput => planInput(T, NOW, over);

const job = waitingJob;

/** An unpinned runner of ours, running since `idleMin` minutes ago, its deadline `leftMin` minutes away. */
const ours = (name: string, idleMin: number, leftMin: number, extra: Partial<DispatcherRunner> = {}): DispatcherRunner => ({
  name,
  state: "running",
  reason: "",
  labels: ["linux"],
  scope_key: "instance",
  job: null,
  updated_at: iso(NOW - idleMin * MIN),
  expires_at: iso(NOW + leftMin * MIN),
  ...extra,
});
const reg = (name: string, status: string, extra: Partial<ActionRunner> = {}): ActionRunner => ({
  id: 1,
  name,
  status,
  labels: ["linux"],
  ...extra,
});

/** One idle warm runner per row: registered idle unless said otherwise. */
function world(runners: { r: DispatcherRunner; status?: string; busy?: boolean }[]) {
  return {
    inFlight: runners.map((x) => x.r),
    registered: runners
      .filter((x) => x.status !== "absent")
      .map((x) => reg(x.r.name, x.status ?? "idle", x.busy === undefined ? {} : { busy: x.busy })),
  };
}

describe("retiring idle runners before their deadline", () => {
  const cases: { what: string; runner: DispatcherRunner; status?: string; busy?: boolean; retired: boolean }[] = [
    { what: "idle with 5 of 30 minutes left", runner: ours("w1", 25, 5), retired: true },
    { what: "idle with 9m59s left", runner: ours("w1", 20, 9.99), retired: true },
    { what: "idle with exactly 10 minutes left", runner: ours("w1", 20, 10), retired: false },
    { what: "idle with 15 minutes left", runner: ours("w1", 15, 15), retired: false },
    { what: "taking a job (active)", runner: ours("w1", 25, 5), status: "active", retired: false },
    { what: "Gitea: idle status but busy", runner: ours("w1", 25, 5), busy: true, retired: false },
    { what: "still booting (offline at the forge)", runner: ours("w1", 25, 5), status: "offline", retired: false },
    { what: "not registered yet", runner: ours("w1", 25, 5), status: "absent", retired: false },
    { what: "still launching at the dispatcher", runner: ours("w1", 25, 5, { state: "launching" }), retired: false },
    { what: "pinned to a job", runner: ours("w1", 25, 5, { job: { id: 9, handle: "h-9" } }), retired: false },
    { what: "without a deadline in the dispatcher's answer", runner: ours("w1", 25, 5, { expires_at: null }), retired: false },
    { what: "a 30-minute TTL, created 25 minutes ago", runner: ours("w1", 24, 5, { created_at: iso(NOW - 25 * MIN) }), retired: true },
    {
      what: "a TTL of 10 minutes, no longer than warm_retire_before (a replacement would be retired too)",
      runner: ours("w1", 4, 5, { created_at: iso(NOW - 5 * MIN) }),
      retired: false,
    },
  ];
  it.each(cases)("$what → retired: $retired", ({ runner, status, busy, retired }) => {
    const p = plan(input({ targets: [{ ...T, minIdle: 1 }], ...world([{ r: runner, status, busy }]) }));
    expect(p.cancels.map((c) => [c.runner, c.kind])).toEqual(retired ? [["w1", "retire"]] : []);
    // A retired runner is not free: the pool of one is refilled in the same pass.
    const keep = plan(input({ targets: [{ ...T, minIdle: 1, warmRetireBeforeMs: undefined }], ...world([{ r: runner, status, busy }]) }));
    expect(p.intents.length - keep.intents.length).toBe(retired ? 1 : 0);
    if (retired) expect(keep.intents).toEqual([]);
  });

  it("says why, with the TTL left and the setting", () => {
    const p = plan(input({ ...world([{ r: ours("w1", 25, 5) }]) }));
    expect(p.cancels).toEqual([
      {
        runner: "w1",
        target: "linux",
        kind: "retire",
        reason:
          "idle with 5m0s of its TTL left, less than warm_retire_before 10m0s: a job it took could be killed by the deadline; replacing it",
      },
    ]);
  });

  it("a waiting job gets a runner of its own instead of the retiring one", () => {
    const p = plan(input({ jobs: [job(1)], ...world([{ r: ours("w1", 25, 5) }]) }));
    expect(p.cancels.map((c) => c.runner)).toEqual(["w1"]);
    expect(p.intents.map((i) => [i.kind, i.forJob])).toEqual([["job", 1]]);
  });

  it("is off for a target without warm_retire_before", () => {
    const p = plan(input({ targets: [{ ...T, warmRetireBeforeMs: undefined }], ...world([{ r: ours("w1", 2, 5) }]) }));
    expect(p.cancels).toEqual([]);
  });
});

describe("shrinking a warm pool above its wanted size", () => {
  // w-a idle 20 min (deadline in 12), w-b idle 6 min (deadline in 24), w-c idle 2 min (deadline in 28).
  const three = [{ r: ours("w-a", 20, 12) }, { r: ours("w-b", 6, 24) }, { r: ours("w-c", 2, 28) }];
  const cases: { what: string; minIdle: number; jobs?: ActionRunJob[]; extra?: Partial<PlanInput>; stopped: string[] }[] = [
    { what: "min_idle 0: every runner idle past the timeout, nearest deadline first", minIdle: 0, stopped: ["w-a", "w-b"] },
    { what: "min_idle 1: two surplus, both past the timeout", minIdle: 1, stopped: ["w-a", "w-b"] },
    { what: "min_idle 2: one surplus, the nearest deadline", minIdle: 2, stopped: ["w-a"] },
    { what: "min_idle 3: none surplus", minIdle: 3, stopped: [] },
    { what: "two waiting jobs will take two of them", minIdle: 0, jobs: [job(1), job(2)], stopped: ["w-a"] },
    { what: "three waiting jobs will take all of them", minIdle: 0, jobs: [job(1), job(2), job(3)], stopped: [] },
    { what: "runner list unavailable (Forgejo < 15)", minIdle: 0, extra: { registered: undefined }, stopped: [] },
    { what: "runner list failed this pass", minIdle: 0, extra: { registeredFailed: true }, stopped: [] },
  ];
  it.each(cases)("$what → $stopped", ({ minIdle, jobs = [], extra = {}, stopped }) => {
    const p = plan(input({ targets: [{ ...T, minIdle }], jobs, ...world(three), ...extra }));
    expect(p.cancels.map((c) => c.runner)).toEqual(stopped);
    expect(p.cancels.every((c) => c.kind === "shrink")).toBe(true);
    expect(p.intents.filter((i) => i.kind === "warm")).toEqual([]);
  });

  it("a booting runner counts as free but is never stopped", () => {
    const p = plan(input({ ...world([{ r: ours("w-a", 20, 12) }, { r: ours("w-boot", 20, 12), status: "offline" }]) }));
    expect(p.cancels.map((c) => c.runner)).toEqual(["w-a"]);
  });

  it("says why", () => {
    const p = plan(input({ targets: [{ ...T, minIdle: 2 }], ...world(three) }));
    expect(p.cancels[0]!.reason).toBe(
      "idle for 20m0s (warm_idle_timeout 5m0s) while target linux has 3 free runner(s) for 0 waiting job(s) and min_idle 2",
    );
  });

  it("is off for a target without warm_idle_timeout", () => {
    const p = plan(input({ targets: [{ ...T, warmIdleTimeoutMs: undefined }], ...world(three) }));
    expect(p.cancels).toEqual([]);
  });
});

describe("no paying twice: pinned runners only for jobs no free runner covers", () => {
  it("two free runners cover the two oldest jobs; the newer two get pinned runners", () => {
    const p = plan(
      input({ jobs: [job(1), job(2), job(3), job(4)], ...world([{ r: ours("w1", 1, 29) }, { r: ours("w2", 0, 30), status: "offline" }]) }),
    );
    expect(p.intents.map((i) => i.job?.id)).toEqual([3, 4]);
    expect(p.jobs.map((j) => [j.id, j.state])).toEqual([
      [1, "covered"],
      [2, "covered"],
      [3, "dispatch"],
      [4, "dispatch"],
    ]);
    expect(p.jobs[0]!.reason).toBe("waiting for one of 2 idle or starting runner(s) of target linux");
  });

  it("a job with its own pinned runner on the way does not use up a free runner, nor refill the pool", () => {
    const pinned = ours("p1", 0, 30, { state: "launching", job: { id: 1, handle: "h-1" } });
    const p = plan(
      input({
        targets: [{ ...T, minIdle: 1 }],
        jobs: [job(1), job(2), job(3)],
        ...world([{ r: pinned, status: "absent" }, { r: ours("w1", 1, 29) }]),
      }),
    );
    expect(p.jobs.map((j) => [j.id, j.state])).toEqual([
      [1, "in_flight"],
      [2, "covered"],
      [3, "covered"],
    ]);
    // The free runner will take job 2: the pool of one is refilled now, and that runner takes job 3.
    expect(p.intents.map((i) => [i.kind, i.forJob])).toEqual([["warm", undefined]]);
    // Next pass, with the new warm runner starting: nothing more.
    const again = plan(
      input({
        targets: [{ ...T, minIdle: 1 }],
        jobs: [job(1), job(2), job(3)],
        ...world([
          { r: pinned, status: "absent" },
          { r: ours("w1", 1, 29) },
          { r: ours("w2", 0, 30), status: "absent" },
          { r: ours("p3", 0, 30, { state: "pending", job: { id: 3, handle: "h-3" } }), status: "absent" },
        ]),
      }),
    );
    expect(again.intents).toEqual([]);
  });

  it("warm runners asked for in the same pass take the oldest jobs; pinned runners only beyond them", () => {
    const p = plan(input({ targets: [{ ...T, minIdle: 2 }], jobs: [job(1), job(2), job(3)] }));
    expect(p.intents.map((i) => [i.kind, i.job?.id])).toEqual([
      ["job", 3],
      ["warm", undefined],
      ["warm", undefined],
    ]);
    expect(p.jobs.map((j) => [j.id, j.state, j.reason])).toEqual([
      [1, "covered", "waiting for one of 2 warm runner(s) of target linux asked for now"],
      [2, "covered", "waiting for one of 2 warm runner(s) of target linux asked for now"],
      [3, "dispatch", "asking the dispatcher for a runner"],
    ]);
    // Before issue 13: a pinned runner for every job and the pool on top (two boots raced per job).
    const before = plan(input({ targets: [{ ...T, minIdle: 2 }], jobs: [job(1), job(2), job(3)], pinEveryJob: true }));
    expect(before.intents.map((i) => [i.kind, i.job?.id])).toEqual([
      ["job", 1],
      ["job", 2],
      ["job", 3],
      ["warm", undefined],
      ["warm", undefined],
    ]);
  });

  it("without a free runner every job is pinned, as before", () => {
    const p = plan(input({ jobs: [job(1), job(2)] }));
    expect(p.intents.map((i) => i.job?.id)).toEqual([1, 2]);
  });
});

describe("pending pinned runners whose job is no longer waiting", () => {
  const pinnedTo = (id: number, state: string) => ours(`p${id}`, 0, 30, { state, job: { id, handle: `h-${id}` } });
  const cases: { what: string; runner: DispatcherRunner; jobs: ActionRunJob[]; complete: boolean; stopped: boolean }[] = [
    {
      what: "pending, its job taken by another runner",
      runner: pinnedTo(1, "pending"),
      jobs: [job(1, { status: "running" })],
      complete: true,
      stopped: true,
    },
    { what: "pending, its job gone from the list", runner: pinnedTo(1, "pending"), jobs: [], complete: true, stopped: true },
    { what: "pending, its job still waiting", runner: pinnedTo(1, "pending"), jobs: [job(1)], complete: true, stopped: false },
    {
      what: "launching (its instance may be running the job)",
      runner: pinnedTo(1, "launching"),
      jobs: [job(1, { status: "running" })],
      complete: true,
      stopped: false,
    },
    { what: "pending, but the job list is webhook hints only", runner: pinnedTo(1, "pending"), jobs: [], complete: false, stopped: false },
  ];
  it.each(cases)("$what → stopped: $stopped", ({ runner, jobs, complete, stopped }) => {
    const p = plan(input({ jobs, jobsComplete: complete, inFlight: [runner], registered: [] }));
    expect(p.cancels).toEqual(
      stopped
        ? [
            {
              runner: "p1",
              target: "linux",
              kind: "unneeded",
              reason: "job 1 is no longer waiting (another runner took it, or it was cancelled) and this runner has not started",
            },
          ]
        : [],
    );
  });
});
