import { GarmPolicy } from "./garm.js";
import { OriginalPolicy } from "./original.js";
import type { PolicyFactory } from "./policy.js";
import { TodayPolicy } from "./today.js";

export interface NamedPolicy {
  name: string;
  create: PolicyFactory;
}

/** The policies compared side by side, in the order the table prints them. */
export const POLICIES: readonly NamedPolicy[] = [
  { name: "original", create: (ctx) => new OriginalPolicy(ctx) },
  { name: "garm-like", create: (ctx) => new GarmPolicy(ctx) },
  { name: "today", create: (ctx) => new TodayPolicy(ctx, "today") },
  // The product's planner since issue 13 item 3, on the same pass timing: any difference from the
  // row above is the planner change alone.
  { name: "improved", create: (ctx) => new TodayPolicy(ctx, "improved") },
  { name: "auto", create: (ctx) => new TodayPolicy(ctx, "auto") },
];

export function policyNamed(name: string): NamedPolicy {
  const p = POLICIES.find((x) => x.name === name);
  if (!p) throw new Error(`unknown policy "${name}"; choose one of ${POLICIES.map((x) => x.name).join(", ")}`);
  return p;
}
