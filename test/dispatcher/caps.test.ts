import { describe, expect, it } from "vitest";
import type { CapConfig } from "../../src/config/dispatcher-schema.js";
import { admit } from "../../src/dispatcher/caps.js";
import { scopeKey } from "../../src/forgejo/scope.js";
import type { Scope } from "../../src/forgejo/scope.js";
import type { RunnerRecord, RunnerState } from "../../src/store/types.js";

let n = 0;
function runner(state: RunnerState, labels: string[], scope: Scope = { level: "instance" }): RunnerRecord {
  n += 1;
  const at = new Date(1_700_000_000_000 + n).toISOString();
  return {
    name: `r${n}`,
    dispatchId: "d",
    state,
    reason: "",
    platform: "linux",
    labels,
    scope,
    machineType: "4x8",
    image: "i",
    ttlMs: 60_000,
    env: {},
    launchAttempts: 0,
    createdAt: at,
    updatedAt: at,
    queueDeadline: at,
    history: [],
  };
}
const key = (r: Pick<RunnerRecord, "scope">) => scopeKey(r.scope);
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
    const pending = [
      runner("pending", ["l"], repo("a")),
      runner("pending", ["l"], repo("a")),
      runner("pending", ["l"], repo("a")),
      runner("pending", ["l"], repo("b")),
    ];
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

  it("a cap of several labels counts only live runners that carry all of them", () => {
    const cap = { labels: ["gpu", "large"], max: 1 };
    // Runners with some of the labels are not covered: they neither count nor wait.
    const someOnly = admit(
      [runner("pending", ["gpu", "large"])],
      [runner("running", ["gpu"]), runner("running", ["large", "x"])],
      { maxRunners: 100, caps: [cap] },
      key,
    );
    expect(someOnly.admit).toHaveLength(1);
    expect(someOnly.waiting.size).toBe(0);
    // A live runner with every label (and more) fills the cap.
    const pending = runner("pending", ["large", "gpu"]);
    const all = admit([pending], [runner("running", ["x", "gpu", "large"])], { maxRunners: 100, caps: [cap] }, key);
    expect(all.admit).toHaveLength(0);
    expect(all.waiting.get(pending.name)).toBe("waiting for capacity: cap labels [gpu, large] max=1 reached");
  });

  it("a pending runner with only some of a cap's labels is not held by it, and does not use it up", () => {
    const cap = { labels: ["gpu", "large"], max: 1 };
    const pending = [runner("pending", ["gpu"]), runner("pending", ["gpu", "large"]), runner("pending", ["gpu", "large"])];
    const r = admit(pending, [], { maxRunners: 100, caps: [cap] }, key);
    expect(r.admit.map((x) => x.name)).toEqual([pending[0]!.name, pending[1]!.name]);
    expect([...r.waiting.keys()]).toEqual([pending[2]!.name]);
  });

  it.each<[CapConfig, string]>([
    [{ labels: ["mac"], scope: "repo:acme/*", max: 1 }, "cap labels [mac] and scope repo:acme/* (per scope) max=1"],
    [{ max: 2 }, "cap (all) max=2"],
  ])("a cap with labels and a scope applies where both match, and says so: %o", (cap, described) => {
    const live = cap.labels
      ? [runner("running", ["mac"], repo("a")), runner("running", ["mac"], repo("b"))]
      : [runner("running", ["x"]), runner("running", ["y"], repo("b"))];
    const pending = [
      runner("pending", ["mac"], repo("a")),
      runner("pending", ["mac"], { level: "organization", owner: "acme" }),
      runner("pending", ["linux"], repo("a")),
    ];
    const r = admit(pending, live, { maxRunners: 100, caps: [cap] }, key);
    expect(r.waiting.get(pending[0]!.name)).toBe(`waiting for capacity: ${described} reached`);
    // Outside the scope pattern, or without the labels, the cap does not apply.
    if (cap.labels) expect(r.admit.map((x) => x.name)).toEqual([pending[1]!.name, pending[2]!.name]);
    else expect(r.admit).toEqual([]);
  });

  it("the first cap that is full is the one named; runners admitted in the pass count against every cap they match", () => {
    const caps = [
      { labels: ["a"], max: 5 },
      { labels: ["b"], max: 1 },
    ];
    const pending = [runner("pending", ["a", "b"]), runner("pending", ["a", "b"]), runner("pending", ["a"])];
    const r = admit(pending, [], { maxRunners: 100, caps }, key);
    expect(r.admit.map((x) => x.name)).toEqual([pending[0]!.name, pending[2]!.name]);
    expect(r.waiting.get(pending[1]!.name)).toBe("waiting for capacity: cap labels [b] max=1 reached");
  });

  it("max_runners counts live runners and the ones admitted in this pass, and is checked before the caps", () => {
    const pending = [runner("pending", ["gpu"]), runner("pending", ["gpu"]), runner("pending", ["cpu"])];
    const r = admit(pending, [runner("running", ["gpu"])], { maxRunners: 2, caps: [{ labels: ["gpu"], max: 1 }] }, key);
    expect(r.admit.map((x) => x.name)).toEqual([pending[2]!.name]);
    expect(r.waiting.get(pending[0]!.name)).toBe("waiting for capacity: cap labels [gpu] max=1 reached");
    expect(r.waiting.get(pending[1]!.name)).toBe("waiting for capacity: cap labels [gpu] max=1 reached");
    const full = admit(
      pending,
      [runner("running", ["gpu"]), runner("running", ["x"])],
      { maxRunners: 2, caps: [{ labels: ["gpu"], max: 1 }] },
      key,
    );
    expect(full.waiting.get(pending[0]!.name)).toBe("waiting for capacity: max_runners=2 reached");
  });

  it("a cap with a scope pattern leaves scopes outside the pattern alone, however many runners they have", () => {
    const org = { level: "organization" as const, owner: "acme" };
    const pending = runner("pending", ["mac"], org);
    const r = admit(
      [pending],
      [runner("running", ["mac"], org)],
      { maxRunners: 100, caps: [{ labels: ["mac"], scope: "repo:acme/*", max: 1 }] },
      key,
    );
    expect(r.admit.map((x) => x.name)).toEqual([pending.name]);
  });

  it("caps without a scope keep separate counts", () => {
    const caps = [
      { labels: ["a"], max: 1 },
      { labels: ["b"], max: 1 },
    ];
    const pending = runner("pending", ["a"]);
    const r = admit([pending], [runner("running", ["b"])], { maxRunners: 100, caps }, key);
    expect(r.admit.map((x) => x.name)).toEqual([pending.name]);
  });

  it("a scope cap counts live runners of each scope apart", () => {
    const live = [runner("running", ["l"], repo("a")), runner("running", ["l"], repo("b"))];
    const pending = [runner("pending", ["l"], repo("a")), runner("pending", ["l"], repo("c"))];
    const r = admit(pending, live, { maxRunners: 100, caps: [{ scope: "repo:acme/*", max: 1 }] }, key);
    expect(r.admit.map((x) => x.name)).toEqual([pending[1]!.name]);
  });
});
