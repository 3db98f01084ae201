import { describe, expect, it } from "vitest";
import { admit } from "../../src/dispatcher/caps.js";
import { scopeKey } from "../../src/forgejo/scope.js";
import type { Scope } from "../../src/forgejo/scope.js";
import type { RunnerRecord, RunnerState } from "../../src/store/types.js";

let n = 0;
function runner(state: RunnerState, labels: string[], scope: Scope = { level: "instance" }): RunnerRecord {
  n += 1;
  const at = new Date(1_700_000_000_000 + n).toISOString();
  return {
    name: `r${n}`, dispatchId: "d", state, reason: "", platform: "linux", labels, scope, machineType: "4x8", image: "i",
    ttlMs: 60_000, env: {}, launchAttempts: 0, createdAt: at, updatedAt: at, queueDeadline: at, history: [],
  };
}
const key = (r: RunnerRecord) => scopeKey(r.scope);
const repo = (name: string): Scope => ({ level: "repository", owner: "acme", name });

describe("admit", () => {
  it("admits in FIFO order up to max_runners, counting live runners", () => {
    const live = [runner("running", ["a"]), runner("launching", ["a"])];
    const pending = [runner("pending", ["a"]), runner("pending", ["a"]), runner("pending", ["a"])];
    const r = admit(pending, live, { maxRunners: 4, caps: [] }, key);
    expect(r.admit.map((x) => x.name)).toEqual([pending[0]!.name, pending[1]!.name]);
    expect(r.waiting.get(pending[2]!.name)).toBe("waiting for capacity: max_runners=4 reached");
  });

  it("applies a label-set cap only to runners that carry all its labels", () => {
    const live = [runner("running", ["gpu", "x"])];
    const pending = [runner("pending", ["gpu", "x"]), runner("pending", ["cpu"]), runner("pending", ["gpu"])];
    const r = admit(pending, live, { maxRunners: 100, caps: [{ labels: ["gpu"], max: 1 }] }, key);
    expect(r.admit.map((x) => x.labels)).toEqual([["cpu"]]);
    expect(r.waiting.get(pending[0]!.name)).toBe("waiting for capacity: cap labels [gpu] max=1 reached");
    expect(r.waiting.size).toBe(2);
  });

  it("lets one repository not starve another under a per-repository cap", () => {
    const live = [runner("running", ["l"], repo("busy")), runner("running", ["l"], repo("busy"))];
    const pending = [runner("pending", ["l"], repo("busy")), runner("pending", ["l"], repo("quiet"))];
    const r = admit(pending, live, { maxRunners: 100, caps: [{ scope: "repo:acme/busy", max: 2 }] }, key);
    expect(r.admit.map((x) => scopeKey(x.scope))).toEqual(["repo:acme/quiet"]);
    expect(r.waiting.get(pending[0]!.name)).toBe("waiting for capacity: cap scope repo:acme/busy (per scope) max=2 reached");
  });

  it("a scope pattern caps each matching scope separately, counting admissions in the same pass", () => {
    const pending = [runner("pending", ["l"], repo("a")), runner("pending", ["l"], repo("a")), runner("pending", ["l"], repo("a")), runner("pending", ["l"], repo("b"))];
    const r = admit(pending, [], { maxRunners: 100, caps: [{ scope: "repo:acme/*", max: 2 }] }, key);
    expect(r.admit.map((x) => scopeKey(x.scope))).toEqual(["repo:acme/a", "repo:acme/a", "repo:acme/b"]);
    expect(r.waiting.has(pending[2]!.name)).toBe(true);
  });

  it("a label cap counts every runner with those labels together", () => {
    const pending = [runner("pending", ["mac"], repo("a")), runner("pending", ["mac"], repo("b"))];
    const r = admit(pending, [], { maxRunners: 100, caps: [{ labels: ["mac"], max: 1 }] }, key);
    expect(r.admit).toHaveLength(1);
  });

  it("a cap of zero blocks everything it covers", () => {
    const pending = [runner("pending", ["mac"])];
    const r = admit(pending, [], { maxRunners: 100, caps: [{ labels: ["mac"], max: 0 }] }, key);
    expect(r.admit).toHaveLength(0);
  });
});
