import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Actor } from "../../src/autoscaler/act.js";
import { DispatcherClient } from "../../src/autoscaler/dispatcher-client.js";
import type { DispatchBody } from "../../src/autoscaler/dispatcher-types.js";
import type { Plan } from "../../src/autoscaler/plan.js";
import { startFakeDispatcher } from "../fakes/dispatcher/index.js";
import type { FakeDispatcher } from "../fakes/dispatcher/index.js";
import { captureLogger } from "../helpers/log-capture.js";

/** The Actor carries out plan.cancels as DELETE /api/v1/runners/{name} before asking for runners. */
const TOKEN = "cancel-test-token-0123456789abcdef";
const body: DispatchBody = { count: 1, labels: ["linux"], scope: { level: "instance" } };
let fake: FakeDispatcher;
let client: DispatcherClient;

beforeAll(async () => {
  fake = await startFakeDispatcher({ token: TOKEN, allowLabels: ["linux"] });
  client = new DispatcherClient({ url: fake.url, timeoutMs: 2000, token: TOKEN });
});
afterAll(async () => {
  await fake.close();
});

const emptyPlan = (over: Partial<Plan>): Plan => ({ intents: [], cancels: [], jobs: [], targets: [], warmSeqUsed: 0, ...over });

describe("stopping idle runners", () => {
  it("DELETEs each runner with the reason, then asks for the replacement", async () => {
    const logs = captureLogger();
    const actor = new Actor({ instance: "fj", client, logger: logs.logger, now: () => new Date(), bodyFor: () => body });
    const first = await client.dispatch(body, "warm-1");
    const name = first.kind === "created" ? first.response.runners[0]!.name : "";
    fake.runners.find((r) => r.name === name)!.state = "running";
    const result = await actor.act(
      emptyPlan({
        cancels: [{ runner: name, target: "linux", kind: "retire", reason: "idle with 5m0s of its TTL left" }],
        intents: [{ key: "warm-2", target: "linux", count: 1, kind: "warm" }],
      }),
      new Set(),
    );
    expect(result.cancelled).toBe(1);
    expect(result.created).toBe(1);
    const r = fake.runners.find((x) => x.name === name)!;
    expect(r.state).toBe("failed");
    expect(r.reason).toBe("cancelled through the API (warm runner retired: idle with 5m0s of its TTL left)");
    const methods = fake.requests.slice(-2).map((x) => [x.method, x.auth]);
    expect(methods).toEqual([
      ["DELETE", "ok"],
      ["POST", "ok"],
    ]);
    expect(logs.text()).toContain("idle runner retired before its deadline");
  });

  it("a runner the dispatcher no longer knows is gone already; a failure is reported on the target", async () => {
    const actor = new Actor({ instance: "fj", client, logger: captureLogger().logger, now: () => new Date(), bodyFor: () => body });
    const gone = await actor.act(
      emptyPlan({ cancels: [{ runner: "nscloud-gone", target: "linux", kind: "shrink", reason: "idle" }] }),
      new Set(),
    );
    expect(gone.cancelled).toBe(1);
    expect(gone.warmErrors.size).toBe(0);

    fake.failNext("/api/v1/runners/nscloud-x", 500, 1, { method: "DELETE" });
    const failed = await actor.act(
      emptyPlan({ cancels: [{ runner: "nscloud-x", target: "linux", kind: "shrink", reason: "idle" }] }),
      new Set(),
    );
    expect(failed.cancelled).toBe(0);
    expect(failed.warmErrors.get("linux")).toMatch(
      /^stopping runner nscloud-x at the dispatcher failed with 500: .*; the runner is left running and the next pass tries again$/,
    );
  });
});

describe("stopping only runners that are still idle", () => {
  it("asks with if_idle; a runner that took a job meanwhile (409) stays, without an error on the target", async () => {
    const logs = captureLogger();
    const actor = new Actor({ instance: "fj", client, logger: logs.logger, now: () => new Date(), bodyFor: () => body });
    const first = await client.dispatch(body, "warm-busy-1");
    const name = first.kind === "created" ? first.response.runners[0]!.name : "";
    fake.runners.find((r) => r.name === name)!.state = "running";
    fake.busy.add(name);
    const result = await actor.act(
      emptyPlan({ cancels: [{ runner: name, target: "linux", kind: "shrink", reason: "idle for 5m0s" }] }),
      new Set(),
    );
    const del = fake.requests.filter((x) => x.method === "DELETE").at(-1)!;
    expect(del.query.if_idle).toBe("true");
    expect(result.cancelled).toBe(0);
    expect(result.warmErrors.size).toBe(0);
    expect(fake.runners.find((x) => x.name === name)!.state).toBe("running");
    expect(logs.text()).toContain(`runner ${name} took a job before it could be stopped; it stays`);
  });
});
