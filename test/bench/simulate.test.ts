import { describe, expect, it } from "vitest";
import type { Deployment } from "../../bench/simulate/deployment.js";
import { LINUX_SMALL, autoscalerInstance, standardDeployment } from "../../bench/simulate/deployment.js";
import { policyNamed } from "../../bench/simulate/policies/index.js";
import { simulate } from "../../bench/simulate/run.js";
import type { Trace } from "../../bench/simulate/trace.js";
import { mixedDayTrace, steadyTrace } from "../../bench/simulate/traces.js";

/** Sunday 1 March 2026, 00:00 UTC. */
const T0 = Date.UTC(2026, 2, 1);

/** One small Linux target, no warm pool, every instance booting in exactly 10 s, polling every 5 s. */
function tinyDeployment(): Deployment {
  const base = standardDeployment();
  return {
    ...base,
    autoscaler: autoscalerInstance({
      dispatcher: { url: "http://dispatcher.sim.invalid" },
      instances: [
        {
          name: "tiny",
          forgejo: { base_url: "http://forgejo.sim.invalid", token: "t" },
          poll_interval: "5s",
          targets: [{ name: "small", labels: [LINUX_SMALL] }],
        },
      ],
    }),
    dispatcher: { ...base.dispatcher, boot: { ...base.dispatcher.boot, linux: { kind: "fixed", ms: 10_000 } } },
  };
}

/** One job waiting from T0 + 1 s, running a minute; its deliveries are lost only at loss 1. */
function oneJob(): Trace {
  const run = { id: 1, trigger: "push" as const, draws: { started: 0.99, finished: 0.99 } };
  return {
    name: "one-job",
    description: "one job",
    start: T0,
    end: T0 + 60_000,
    jobs: [
      {
        id: 1,
        arrival: T0 + 1000,
        runsOn: [LINUX_SMALL],
        durationMs: 60_000,
        run,
        draws: { queued: 0.99, started: 0.99, completed: 0.99 },
      },
    ],
  };
}

const run = (policy: string, loss: number) =>
  simulate({ trace: oneJob(), deployment: tinyDeployment(), policy: policyNamed(policy).create, loss, seed: 1, drainMs: 600_000 });

describe("simulator: one job, 10 s boot, 5 s poll", () => {
  it("today, every webhook lost: the poll at 5 s asks, the runner is up at 15 s: 14 s wait", async () => {
    const f = await run("today", 1);
    expect([f.p50.ms, f.max.ms, f.stranded, f.instances, f.unused, f.idleMinutes]).toEqual([14_000, 14_000, 0, 1, 0, 0]);
  });

  it("today, push delivered at 1.5 s: a pass after the 1 s debounce asks at 2.5 s: 11.5 s wait", async () => {
    const f = await run("today", 0);
    expect([f.p50.ms, f.stranded, f.instances]).toEqual([11_500, 0, 1]);
  });

  it("original, every webhook lost: its 30 s poll asks at 30 s: 39 s wait", async () => {
    const f = await run("original", 1);
    expect([f.p50.ms, f.stranded, f.instances]).toEqual([39_000, 0, 1]);
  });

  it("garm-like: the job recorded at 1.5 s is launched for at the first 5 s tick past the 30 s backoff (35 s): 44 s wait", async () => {
    const f = await run("garm-like", 0);
    expect([f.p50.ms, f.stranded, f.instances]).toEqual([44_000, 0, 1]);
  });

  it("garm-like never hears of a job whose webhook was lost, and with min_idle 0 strands it", async () => {
    const f = await run("garm-like", 1);
    expect([f.stranded, f.instances, f.max.atLeast]).toEqual([1, 0, true]);
  });
});

describe("simulator: losing webhooks", () => {
  it("at 50% loss today's polling strands no job of a mixed day, where the original strands many", async () => {
    const trace = mixedDayTrace(3);
    const today = await simulate({ trace, deployment: standardDeployment(), policy: policyNamed("today").create, loss: 0.5, seed: 3 });
    const original = await simulate({
      trace,
      deployment: standardDeployment(),
      policy: policyNamed("original").create,
      loss: 0.5,
      seed: 3,
    });
    expect(today.jobs).toBeGreaterThan(300);
    expect(today.stranded).toBe(0);
    expect(today.max.atLeast).toBe(false);
    expect(original.stranded).toBeGreaterThan(50);
  });
});

describe("simulator: determinism", () => {
  it("the same seed gives the same trace and the same figures; another seed another trace", async () => {
    expect(steadyTrace(7)).toEqual(steadyTrace(7));
    expect(steadyTrace(8).jobs).not.toEqual(steadyTrace(7).jobs);
    const once = () =>
      simulate({ trace: steadyTrace(7), deployment: standardDeployment(), policy: policyNamed("today").create, loss: 0.05, seed: 7 });
    expect(await once()).toEqual(await once());
  });

  it("refuses a loss that is not a probability, saying so", async () => {
    await expect(
      simulate({ trace: oneJob(), deployment: tinyDeployment(), policy: policyNamed("today").create, loss: 1.5, seed: 1 }),
    ).rejects.toThrow("loss must be a probability between 0 and 1, got 1.5");
  });
});
