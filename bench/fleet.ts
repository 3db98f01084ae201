import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER } from "../src/namespace/launcher.js";
import type { DispatchRecord, RunnerRecord, Store } from "../src/store/types.js";
import type { FakeForgejo } from "../test/fakes/forgejo/index.js";
import type { FakeNscInstance, FakeNscState } from "../test/fakes/nsc/index.js";

const B32 = "0123456789abcdefghijklmnopqrstuv";
const REGION = "eu";

function b32(n: number): string {
  let s = "";
  for (const b of randomBytes(n)) s += B32[b & 31];
  return s;
}

/** One live `nsc run` instance as the fake records it (see cmdRun in test/fakes/nsc/nsc). */
function instance(id: string, runner: string, owner: string, createdAt: string, deadline: string): FakeNscInstance {
  return {
    id,
    region: REGION,
    kind: "run",
    manual: false,
    created_at: createdAt,
    deadline,
    destroyed_at: null,
    destroy_reason: null,
    documented_purpose: "",
    machine_type: "4x8",
    shape: { virtual_cpu: 4, memory_megabytes: 8192, machine_arch: "amd64", os: "linux" },
    platform: "linux/amd64",
    labels: { [LABEL_OWNER]: owner, [LABEL_RUNNER]: runner, [LABEL_PLATFORM]: "linux" },
    features: [],
    volumes: [],
    services: { ssh: { status: "READY" } },
    ssh_sessions: [],
    port_forwards: [],
    image: "code.forgejo.org/forgejo/runner:12",
    name: runner,
    user: "root",
    network: null,
    env: {},
    args: ["/bin/sh", "-c", "true"],
    container: { id: b32(20), name: runner, state: "running", ready: true, started_at: createdAt, exit_code: null, terminated_at: null },
  };
}

export interface Fleet {
  names: string[];
  /** runner name → instance id */
  instances: Map<string, string>;
}

/**
 * Puts `n` running runners in the store (one dispatch, one transaction) and their `n` live
 * instances straight into the fake nsc's state file: spawning `nsc run` 2,000 times would measure
 * setup, not supervision.
 */
export async function createFleet(
  store: Store,
  statePath: string,
  n: number,
  opts: { owner: string; prefix: string; ttlMs: number; forgejo: FakeForgejo },
): Promise<Fleet> {
  const now = new Date();
  const at = now.toISOString();
  const deadline = new Date(now.getTime() + opts.ttlMs).toISOString();
  const dispatch: DispatchRecord = { id: randomUUID(), requestHash: "bench", request: { bench: true }, runnerNames: [], createdAt: at };
  const state = JSON.parse(readFileSync(statePath, "utf8")) as FakeNscState;
  const region = (state.instances[REGION] ??= {});
  const fleet: Fleet = { names: [], instances: new Map() };
  const runners: RunnerRecord[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${opts.prefix}${b32(10)}`;
    const id = b32(13);
    region[id] = instance(id, name, opts.owner, at, deadline);
    fleet.names.push(name);
    fleet.instances.set(name, id);
    const reason = `instance ${id} is up; forgejo-runner is waiting for a job`;
    runners.push({
      name,
      dispatchId: dispatch.id,
      state: "running",
      reason,
      platform: "linux",
      labels: ["namespace-profile-linux-medium"],
      scope: { level: "instance" },
      machineType: "4x8",
      image: "code.forgejo.org/forgejo/runner:12",
      ttlMs: opts.ttlMs,
      env: {},
      instanceId: id,
      // Each has its ephemeral registration in the fake Forgejo, which the supervisor watches.
      forgejoRunnerId: opts.forgejo.world.registerRunner({ level: "instance" }, { name, ephemeral: true, via: "rest" }).id,
      registration: "ephemeral",
      launchAttempts: 1,
      createdAt: at,
      updatedAt: at,
      launchedAt: at,
      expiresAt: deadline,
      queueDeadline: deadline,
      // createDispatch records the first transition (to the given state) itself.
      history: [],
    });
  }
  dispatch.runnerNames = fleet.names;
  await store.createDispatch(dispatch, runners);
  writeFileSync(statePath, JSON.stringify(state));
  return fleet;
}

/**
 * Ends runners the way a finished one-job runner does: Forgejo deletes its ephemeral registration
 * once the job has a result, and forgejo-runner exiting ends the instance (TERMINATE_ON_EXIT,
 * done by editing the state file).
 */
export function finishJobs(forgejo: FakeForgejo, statePath: string, fleet: Fleet, names: readonly string[]): void {
  for (const name of names) {
    const reg = forgejo.state.runners.find((r) => r.name === name && !r.deleted);
    if (reg) forgejo.world.deleteRunner(reg);
  }
  exitContainers(
    statePath,
    names.map((n) => fleet.instances.get(n) as string),
  );
}

function exitContainers(statePath: string, ids: readonly string[]): void {
  const state = JSON.parse(readFileSync(statePath, "utf8")) as FakeNscState;
  const at = new Date().toISOString();
  for (const id of ids) {
    const inst = state.instances[REGION]?.[id];
    if (!inst?.container) continue;
    inst.container.state = "exited";
    inst.container.exit_code = 0;
    inst.container.terminated_at = at;
  }
  writeFileSync(statePath, JSON.stringify(state));
}
