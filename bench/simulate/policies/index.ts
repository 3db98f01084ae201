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
  { name: "today", create: (ctx) => new TodayPolicy(ctx) },
  // Issue 13 item 3 replaces this with the improved planner; until then it is today's, so the
  // table's last two rows agree and any difference later is the change alone.
  { name: "improved", create: (ctx) => new TodayPolicy(ctx) },
];

export function policyNamed(name: string): NamedPolicy {
  const p = POLICIES.find((x) => x.name === name);
  if (!p) throw new Error(`unknown policy "${name}"; choose one of ${POLICIES.map((x) => x.name).join(", ")}`);
  return p;
}
