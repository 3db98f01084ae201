import type { Scope } from "../../src/forgejo/scope.js";
import type { DispatchRecord, RunnerRecord } from "../../src/store/types.js";

export const T0 = Date.parse("2026-01-01T00:00:00.000Z");

export function at(offsetMs: number): Date {
  return new Date(T0 + offsetMs);
}

export function iso(offsetMs: number): string {
  return at(offsetMs).toISOString();
}

export interface DispatchSpec {
  id: string;
  key?: string;
  runners?: number;
  /** Runner names; default `${id}-r${i}`. */
  names?: string[];
  createdAtMs?: number;
  labels?: string[];
  scope?: Scope;
  requestHash?: string;
  env?: Record<string, string>;
  runner?: Partial<RunnerRecord>;
}

/** A dispatch and its runners as the dispatcher would record them on accept. */
export function dispatchWith(spec: DispatchSpec): { dispatch: DispatchRecord; runners: RunnerRecord[] } {
  const created = iso(spec.createdAtMs ?? 0);
  const names = spec.names ?? Array.from({ length: spec.runners ?? 1 }, (_, i) => `${spec.id}-r${i}`);
  const dispatch: DispatchRecord = {
    id: spec.id,
    idempotencyKey: spec.key,
    requestHash: spec.requestHash ?? `hash-${spec.id}`,
    request: { labels: spec.labels ?? ["namespace-profile-linux-medium"], count: names.length, env: { SECRET_ENV: "[redacted]" } },
    runnerNames: names,
    createdAt: created,
  };
  const runners = names.map((name): RunnerRecord => ({
    name,
    dispatchId: spec.id,
    state: "pending",
    reason: "accepted, waiting for a launch slot",
    platform: "linux",
    labels: spec.labels ?? ["namespace-profile-linux-medium"],
    scope: spec.scope ?? { level: "instance" },
    machineType: "4x8",
    image: "code.forgejo.org/forgejo/runner:12",
    ttlMs: 1_800_000,
    env: spec.env ?? {},
    launchAttempts: 0,
    createdAt: created,
    updatedAt: created,
    queueDeadline: iso((spec.createdAtMs ?? 0) + 3_600_000),
    history: [],
    ...spec.runner,
  }));
  return { dispatch, runners };
}
