import { coversAll, labelNames } from "./labels.js";

export interface LabelledTarget {
  name: string;
  labels: readonly string[];
}

/**
 * The target a job belongs to: the first, in config order, whose labels include every label of the
 * job's runs_on (names only). A job with an empty runs_on fits any runner, so the first target.
 */
export function matchTarget<T extends LabelledTarget>(targets: readonly T[], runsOn: readonly string[] | null | undefined): T | undefined {
  const required = runsOn ?? [];
  return targets.find((t) => coversAll(t.labels, required));
}

/** Why a job has no target, for status and logs. */
export function unmatchedReason(runsOn: readonly string[] | null | undefined): string {
  return `no target matches [${labelNames(runsOn ?? []).join(", ")}]`;
}
