import { labelName } from "../runner/labels.js";

/**
 * A runner label is `name[:scheme[:argument]]` ("ubuntu-latest:docker://node:20", "self-hosted:host");
 * Forgejo only ever sees and compares the name (docs/upstream-contracts.md#runner-labels).
 */
export { labelName };

/** The distinct label names of a list, in first-seen order. */
export function labelNames(labels: readonly string[]): string[] {
  return [...new Set(labels.map(labelName).filter((n) => n.length > 0))];
}

/** True when every name in `required` is among `offered` (exact, case-sensitive, like Forgejo). */
export function coversAll(offered: readonly string[], required: readonly string[]): boolean {
  const have = new Set(labelNames(offered));
  return labelNames(required).every((n) => have.has(n));
}

/** Same names, order and suffixes ignored. */
export function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const x = labelNames(a);
  const y = new Set(labelNames(b));
  return x.length === y.size && x.every((n) => y.has(n));
}
