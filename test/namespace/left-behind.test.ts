import { describe, expect, it } from "vitest";
import { LABEL_OWNER, LABEL_RUNNER } from "../../src/namespace/launcher.js";
import type { LaunchSpec } from "../../src/namespace/launcher.js";
import { destroyLeftBehind, leftBehindFilter } from "../../src/namespace/left-behind.js";
import { captureLogger } from "../helpers/log-capture.js";

function spec(instanceLabels: Record<string, string>): LaunchSpec {
  return {
    runnerName: "r1",
    platform: "linux",
    labels: ["linux"],
    image: "img",
    machineType: "2x4",
    ttlMs: 60_000,
    env: {},
    credentials: { mode: "token", instanceUrl: "https://forgejo.example", registrationToken: "reg-token-secret" },
    instanceLabels,
  };
}

/** A workspace of instances by labels; destroy fails for the IDs in `stuck`. */
function workspace(instances: Record<string, Record<string, string>>, o: { listFails?: boolean; stuck?: string[] } = {}) {
  const destroyed: string[] = [];
  const lists: Record<string, string>[] = [];
  return {
    destroyed,
    lists,
    list: async (labels: Record<string, string>) => {
      lists.push(labels);
      if (o.listFails) throw new Error("list is down");
      return Object.entries(instances)
        .filter(([, l]) => Object.entries(labels).every(([k, v]) => l[k] === v))
        .map(([instanceId]) => ({ instanceId }));
    },
    destroy: async (id: string) => {
      if (o.stuck?.includes(id)) throw new Error(`cannot destroy ${id}`);
      destroyed.push(id);
    },
  };
}

describe("leftBehindFilter", () => {
  it("finds the runner by its instance label and owner, else by its name", () => {
    expect(leftBehindFilter(spec({ [LABEL_RUNNER]: "r1-label", [LABEL_OWNER]: "d1" }))).toEqual({
      [LABEL_RUNNER]: "r1-label",
      [LABEL_OWNER]: "d1",
    });
    expect(leftBehindFilter(spec({}))).toEqual({ [LABEL_RUNNER]: "r1" });
  });
});

describe("destroyLeftBehind", () => {
  const mine = { [LABEL_RUNNER]: "r1", [LABEL_OWNER]: "d1" };

  it("destroys the known instance and the runner's own, never another's, and names the first", async () => {
    const ws = workspace({
      i2: mine,
      other: { [LABEL_RUNNER]: "r2", [LABEL_OWNER]: "d1" },
      foreign: { [LABEL_RUNNER]: "r1", [LABEL_OWNER]: "d2" },
    });
    const r = await destroyLeftBehind(spec(mine), { ...ws, known: ["i1"], look: true, log: captureLogger().logger });
    expect(ws.destroyed).toEqual(["i1", "i2"]);
    expect(r).toEqual({ notes: ["destroyed instance i1 it left behind", "destroyed instance i2 it left behind"], first: "i1" });
  });

  it("does not look when the failure cannot have made an instance", async () => {
    const ws = workspace({ i2: mine });
    const r = await destroyLeftBehind(spec(mine), { ...ws, look: false, log: captureLogger().logger });
    expect(ws.lists).toEqual([]);
    expect(r).toEqual({ notes: [], first: undefined });
  });

  it("says what it could not do and leaves it to the orphan sweep, without throwing", async () => {
    const log = captureLogger();
    const ws = workspace({ i2: mine }, { listFails: true, stuck: ["i1"] });
    const r = await destroyLeftBehind(spec(mine), { ...ws, known: ["i1"], look: true, log: log.logger });
    expect(r.notes).toEqual([
      "could not list instances to look for one left behind; the orphan sweep will find it",
      "could not destroy instance i1 it left behind; the orphan sweep retries",
    ]);
    expect(r.first).toBe("i1");
    expect(log.text()).toContain("cannot destroy i1");
    expect(log.text()).toContain("list is down");
  });
});
