import type { CapConfig } from "../config/dispatcher-schema.js";
import type { RunnerFields, RunnerRecord } from "../store/types.js";
import { scopeMatch } from "./allow.js";

export interface CapLimits {
  maxRunners: number;
  caps: readonly CapConfig[];
}

export interface Admission {
  /** Pending runners that may launch now, in FIFO order. */
  admit: RunnerRecord[];
  /** Why each other pending runner waits. */
  waiting: Map<string, string>;
}

function capApplies(cap: CapConfig, r: Pick<RunnerRecord, "labels" | "scope">, scopeKeyOf: string): boolean {
  if (cap.labels && !cap.labels.every((l) => r.labels.includes(l))) return false;
  if (cap.scope && !scopeMatch(cap.scope, scopeKeyOf)) return false;
  return true;
}

function describeCap(cap: CapConfig): string {
  const parts = [];
  if (cap.labels) parts.push(`labels [${cap.labels.join(", ")}]`);
  if (cap.scope) parts.push(`scope ${cap.scope} (per scope)`);
  return `cap ${parts.join(" and ") || "(all)"} max=${cap.max}`;
}

/**
 * A cap with a scope pattern limits each matching scope on its own ("repo:acme/*" max 2 means every
 * repository of acme may have 2); a cap without one counts every runner that carries its labels.
 */
function usageKey(index: number, cap: CapConfig, scopeKeyOf: string): string {
  return cap.scope ? `${index}|${scopeKeyOf.toLowerCase()}` : `${index}`;
}

/**
 * The one place caps are enforced: every path (API, autoscaler, warm pool) creates pending runners
 * and only this decides which may launch. Pure; FIFO; a runner held by a cap does not hold back
 * runners the cap does not cover, so one busy repository cannot starve the others.
 */
export function admit(
  pending: readonly RunnerRecord[],
  live: readonly RunnerFields[],
  limits: CapLimits,
  scopeKeyOf: (r: RunnerFields) => string,
): Admission {
  const used = new Map<string, number>();
  const count = (k: string) => used.get(k) ?? 0;
  for (const r of live) {
    const key = scopeKeyOf(r);
    limits.caps.forEach((cap, i) => {
      if (capApplies(cap, r, key)) used.set(usageKey(i, cap, key), count(usageKey(i, cap, key)) + 1);
    });
  }
  let total = live.length;
  const result: Admission = { admit: [], waiting: new Map() };
  for (const r of pending) {
    if (total >= limits.maxRunners) {
      result.waiting.set(r.name, `waiting for capacity: max_runners=${limits.maxRunners} reached`);
      continue;
    }
    const key = scopeKeyOf(r);
    const blocking = limits.caps.findIndex((cap, i) => capApplies(cap, r, key) && count(usageKey(i, cap, key)) >= cap.max);
    if (blocking >= 0) {
      result.waiting.set(r.name, `waiting for capacity: ${describeCap(limits.caps[blocking] as CapConfig)} reached`);
      continue;
    }
    limits.caps.forEach((cap, i) => {
      if (capApplies(cap, r, key)) used.set(usageKey(i, cap, key), count(usageKey(i, cap, key)) + 1);
    });
    total += 1;
    result.admit.push(r);
  }
  return result;
}
