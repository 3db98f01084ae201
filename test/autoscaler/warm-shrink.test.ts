import { describe, expect, it } from "vitest";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { simulateRunners, startStack } from "./harness.js";
import type { Stack } from "./harness.js";

/**
 * The daemon end to end (config → plan → DELETE at the dispatcher): when the scheduled pool closes,
 * the warm runners Forgejo lists idle are stopped once they have idled warm_idle_timeout.
 */
let stack: Stack | undefined;
const own = closedAfterEach();

describe("a warm pool shrinking when its period ends", () => {
  it("keeps the runners while the period lasts, stops them warm_idle_timeout after it, saying why", async () => {
    let t = Date.parse("2026-03-27T06:59:00Z");
    const target = {
      name: "linux",
      labels: ["linux:host"],
      min_idle: 0,
      timezone: "Europe/Berlin",
      min_idle_schedule: [{ cron: "0 8 * * 1-5", until: "0 18 * * 1-5", min_idle: 2 }],
      warm_idle_timeout: "5m",
    };
    stack = own(
      await startStack({
        forgejo: { version: "15.0.3" },
        dispatcher: { now: () => new Date(t) },
        instance: { targets: [target] },
        deps: { now: () => new Date(t), tuning: { pollIntervalMs: 100 } },
      }),
    );
    const { dispatcher } = stack;
    simulateRunners(stack.forgejo, dispatcher);
    const r = stack.autoscaler.reconcilers[0]!;
    const passesAt = async (iso: string) => {
      t = Date.parse(iso);
      const p = r.passCount;
      await waitFor(() => r.passCount >= p + 2, { what: `two passes at ${iso}` });
    };
    const deletes = () => dispatcher.requests.filter((q) => q.method === "DELETE");

    // 08:00 Berlin: two warm runners, up and idle at Forgejo from then on.
    await passesAt("2026-03-27T07:00:00Z");
    expect(dispatcher.runners.map((x) => x.state)).toEqual(["running", "running"]);
    // 17:59 Berlin: the period still wants them, however long they idled.
    await passesAt("2026-03-27T16:59:00Z");
    expect(deletes()).toEqual([]);
    // 18:00 Berlin: min_idle 0 and both idled for hours: both stopped (nothing asked for instead).
    await passesAt("2026-03-27T17:00:00Z");
    await waitFor(() => dispatcher.runners.every((x) => x.state === "failed"), { what: "both runners stopped" });
    expect(
      deletes()
        .map((q) => q.path)
        .sort(),
    ).toEqual(dispatcher.runners.map((x) => `/api/v1/runners/${x.name}`).sort());
    expect(dispatcher.runners[0]!.reason).toMatch(
      /^cancelled through the API \(warm pool shrunk: idle for 10h0m0s \(warm_idle_timeout 5m0s\) while target linux has 2 free runner\(s\) for 0 waiting job\(s\) and min_idle 0\)$/,
    );
    expect(dispatcher.dispatches).toHaveLength(2);
  });
});

describe("min_idle_auto", () => {
  it("a job arriving makes a pool of one: a warm runner that takes the job, then one for the pool, none pinned", async () => {
    stack = own(
      await startStack({
        forgejo: { version: "15.0.3" },
        instance: { targets: [{ name: "linux", labels: ["linux:host"], min_idle_auto: { max: 2 } }] },
        deps: { tuning: { pollIntervalMs: 100 } },
      }),
    );
    const { forgejo, dispatcher } = stack;
    const r = stack.autoscaler.reconcilers[0]!;
    await waitFor(() => r.passCount >= 2, { what: "two passes" });
    expect(dispatcher.dispatches).toHaveLength(0);
    forgejo.addJob({ repo: "acme/app", runs_on: ["linux"] });
    await waitFor(() => dispatcher.dispatches.length >= 1, { what: "a dispatch" });
    // A pass reports what it observed before it asked: the pass that asks for the second runner still
    // says one. Wait until a pass has seen both, then two more passes that must ask for nothing.
    const target = async () => (await stack!.status()).instances[0]!.targets[0]!;
    await waitFor(async () => (await target()).in_flight === 2, { what: "a pass that sees both runners" });
    const p = r.passCount;
    await waitFor(() => r.passCount >= p + 2, { what: "two more passes" });
    // One arrival in 30 minutes, 30 s boots: a pool of one. Its first runner is asked for as the
    // job's (it will take it), the next pass refills the pool; no pinned runner races them.
    expect(dispatcher.dispatches.map((d) => [d.key?.split(":")[1], d.body.job ?? null])).toEqual([
      ["warm", null],
      ["warm", null],
    ]);
    expect(await target()).toMatchObject({ min_idle: 1, in_flight: 2 });
  });
});
