import { describe, expect, it } from "vitest";
import { capacityByTarget, isRunning, isWaiting, targetOfDispatched, targetOfRegistered } from "../../src/autoscaler/capacity.js";
import type { TargetCapacity } from "../../src/autoscaler/capacity.js";
import type { DispatcherRunner } from "../../src/autoscaler/dispatcher-types.js";
import { REJECTED_RETRY_MS, generationDelayMs, jobBaseKey, warmKey, withGeneration } from "../../src/autoscaler/keys.js";
import { coversAll, labelNames, sameNames } from "../../src/autoscaler/labels.js";
import type { ActionRunJob, ActionRunner } from "../../src/forgejo/types.js";

describe("idempotency keys", () => {
  it.each([
    [{ id: 7 }, "fj:job:7:0"],
    [{ id: 7, attempt: 2 }, "fj:job:7:2"],
    [{ id: 7, handle: "h-1" }, "fj:job:7:h-1"],
    [{ id: 7, attempt: 2, handle: "h-1" }, "fj:job:7:h-1"],
    [{ id: 7, attempt: 0, handle: "" }, "fj:job:7:0"],
  ])("a job %o is keyed %s", (job, key) => {
    expect(jobBaseKey("fj", job)).toBe(key);
  });

  it("differs for every attempt and handle of one job, and between instances", () => {
    const keys = [
      jobBaseKey("fj", { id: 7, attempt: 1 }),
      jobBaseKey("fj", { id: 7, attempt: 2 }),
      jobBaseKey("fj", { id: 7, handle: "a" }),
      jobBaseKey("fj", { id: 7, handle: "b" }),
      jobBaseKey("fj", { id: 8, attempt: 1 }),
      jobBaseKey("gt", { id: 7, attempt: 1 }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("adds a generation suffix after the first", () => {
    expect(withGeneration("fj:job:7:0", 0)).toBe("fj:job:7:0");
    expect(withGeneration("fj:job:7:0", 1)).toBe("fj:job:7:0:r1");
    expect(withGeneration("fj:job:7:0", 12)).toBe("fj:job:7:0:r12");
  });

  it("names a warm slot by instance, target, boot and sequence", () => {
    expect(warmKey("fj", "linux", "b00t", 3)).toBe("fj:warm:linux:b00t-3");
  });

  it.each([
    [0, 0],
    [1, 0],
    [2, 15_000],
    [3, 30_000],
    [4, 60_000],
    [6, 240_000],
    [7, 480_000],
    [8, 600_000],
    [30, 600_000],
  ])("generation %i waits %i ms", (gen, ms) => {
    expect(generationDelayMs(gen)).toBe(ms);
  });

  it("a refused request waits a minute", () => {
    expect(REJECTED_RETRY_MS).toBe(60_000);
  });
});

describe("label names", () => {
  it.each([
    [["a", "b"], ["b:host", "a:docker://x"], true],
    [["a", "a:host"], ["a"], true],
    [["a", "b"], ["a"], false],
    [["a"], ["a", "b"], false],
    [["a", "b"], ["a", "c"], false],
    [[], [], true],
  ])("sameNames(%j, %j) is %s", (a, b, same) => {
    expect(sameNames(a, b)).toBe(same);
  });

  it("coversAll ignores suffixes and empty names on both sides", () => {
    expect(coversAll(["a:host", "b"], ["a:docker://y"])).toBe(true);
    expect(coversAll(["a"], [":host"])).toBe(true);
    expect(coversAll([], ["a"])).toBe(false);
    expect(labelNames([" a ", "a", ":x", "b:y"])).toEqual(["a", "b"]);
  });
});

describe("job status", () => {
  it.each([
    ["waiting", true, false],
    ["queued", true, false],
    ["blocked", false, false],
    ["running", false, true],
    ["in_progress", false, true],
    ["success", false, false],
  ])("%s: waiting %s, running %s", (status, waiting, running) => {
    const j = { id: 1, runs_on: [], status } as ActionRunJob;
    expect(isWaiting(j)).toBe(waiting);
    expect(isRunning(j)).toBe(running);
  });
});

const targets = [
  { name: "small", labels: ["linux:host"] },
  { name: "big", labels: ["linux:host", "big"] },
  { name: "gpu", labels: ["gpu"] },
];

const disp = (name: string, state: string, labels: string[], job: DispatcherRunner["job"] = null): DispatcherRunner => ({
  name,
  state,
  reason: "",
  labels,
  scope_key: "instance",
  job,
});
const reg = (name: string, status: string, labels: string[]): ActionRunner => ({ id: name.length, name, status, labels });
const running = (id: number, runsOn: string[]): ActionRunJob => ({ id, runs_on: runsOn, status: "running" });

describe("which target a runner belongs to", () => {
  it("a dispatched runner: the first target with the same label names", () => {
    expect(targetOfDispatched(targets, disp("r", "running", ["big", "linux:docker://x"]))?.name).toBe("big");
    expect(targetOfDispatched(targets, disp("r", "running", ["linux"]))?.name).toBe("small");
    expect(targetOfDispatched(targets, disp("r", "running", ["linux", "big", "extra"]))).toBeUndefined();
  });

  it("a registered runner: the first target whose labels it covers", () => {
    expect(targetOfRegistered(targets, reg("s", "idle", ["linux", "big"]))?.name).toBe("small");
    expect(targetOfRegistered(targets, reg("s", "idle", ["gpu", "cuda"]))?.name).toBe("gpu");
    expect(targetOfRegistered(targets, reg("s", "idle", ["big"]))).toBeUndefined();
  });
});

describe("capacityByTarget", () => {
  const pick = (m: Map<string, TargetCapacity>, name: string) => {
    const c = m.get(name)!;
    return { inFlight: c.inFlight.map((r) => r.name), pinned: c.pinned.map((r) => r.name), idle: c.idle, free: c.free, running: c.running };
  };

  it("with a runner list: idle and not yet registered (or offline) runners are free, busy ones are not", () => {
    const m = capacityByTarget(
      targets,
      [running(1, ["linux"]), running(2, ["gpu"]), running(3, ["nothing"]), { id: 4, runs_on: ["linux"], status: "waiting" }],
      [
        disp("idle", "running", ["linux"]),
        disp("busy", "running", ["linux"]),
        disp("offline", "running", ["linux"]),
        disp("starting", "launching", ["linux"]),
        disp("queued", "pending", ["linux"]),
        disp("leaving", "finishing", ["linux"]),
        disp("pinned", "running", ["linux"], { id: 9, attempt: 1, handle: "h" }),
        disp("stranger", "running", ["windows"]),
      ],
      [
        reg("idle", "idle", ["linux"]),
        reg("busy", "active", ["linux"]),
        reg("offline", "offline", ["linux"]),
        reg("static", "idle", ["linux", "big"]),
        reg("static-busy", "active", ["linux"]),
        reg("static-off", "offline", ["linux"]),
        reg("win", "idle", ["windows"]),
      ],
    );
    expect(pick(m, "small")).toEqual({
      inFlight: ["idle", "busy", "offline", "starting", "queued", "leaving", "pinned"],
      pinned: ["pinned"],
      idle: 2,
      free: 5,
      running: 1,
    });
    expect(pick(m, "gpu")).toEqual({ inFlight: [], pinned: [], idle: 0, free: 0, running: 1 });
    expect(pick(m, "big")).toEqual({ inFlight: [], pinned: [], idle: 0, free: 0, running: 0 });
  });

  it("a registered runner the dispatcher knows is counted once, by its dispatcher record", () => {
    const m = capacityByTarget(targets, [], [disp("r1", "running", ["linux", "big"])], [reg("r1", "idle", ["linux", "big"])]);
    expect(pick(m, "big")).toMatchObject({ free: 1, idle: 1 });
    expect(pick(m, "small")).toMatchObject({ free: 0, idle: 0 });
  });

  it("without a runner list: live unpinned runners are free, less the running jobs (never below zero)", () => {
    const m = capacityByTarget(
      targets,
      [running(1, ["linux"]), running(2, ["gpu"]), running(3, ["gpu"])],
      [disp("a", "running", ["linux"]), disp("b", "pending", ["linux"]), disp("c", "finishing", ["linux"]), disp("g", "running", ["gpu"])],
      undefined,
    );
    expect(pick(m, "small")).toEqual({ inFlight: ["a", "b", "c"], pinned: [], idle: undefined, free: 1, running: 1 });
    expect(pick(m, "gpu")).toEqual({ inFlight: ["g"], pinned: [], idle: undefined, free: 0, running: 2 });
    expect(pick(m, "big")).toEqual({ inFlight: [], pinned: [], idle: undefined, free: 0, running: 0 });
  });
});
