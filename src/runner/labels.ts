/**
 * forgejo-runner labels are `name[:scheme[:argument]]` ("ubuntu-latest:docker://node:20",
 * "self-hosted:host"); Forgejo only sees and compares the name (docs/upstream-contracts.md#runner-labels).
 */

/** The name part of a label: everything before the first ":". */
export function labelName(label: string): string {
  const i = label.indexOf(":");
  return (i === -1 ? label : label.slice(0, i)).trim();
}

export class LabelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LabelError";
  }
}

/**
 * Gives a label without an executor suffix the configured one (`runner.executor`, e.g. "host" or
 * "docker://node:22"); labels that carry a suffix keep it.
 */
export function resolveLabel(label: string, executor: string): string {
  const l = label.trim();
  if (l === "" || labelName(l) === "") throw new LabelError(`empty runner label in ${JSON.stringify(label)}: every label needs a name`);
  // forgejo-runner splits --labels and FORGEJO_RUNNER_LABELS on commas.
  if (l.includes(","))
    throw new LabelError(
      `runner label ${JSON.stringify(label)} contains a comma; forgejo-runner splits label lists on commas, so rename the label`,
    );
  if (l.includes(":")) return l;
  if (executor.trim() === "") throw new LabelError("runner.executor is empty: set it to host, docker://<image> or lxc://<image>");
  return `${l}:${executor.trim()}`;
}

/** Resolved labels, first occurrence of each name wins (forgejo-runner keys labels by name). */
export function resolveLabels(labels: readonly string[], executor: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const label of labels) {
    const resolved = resolveLabel(label, executor);
    const name = labelName(resolved);
    if (seen.has(name)) continue;
    seen.add(name);
    out.push(resolved);
  }
  if (out.length === 0) throw new LabelError("no runner labels: a runner without labels never gets a job");
  return out;
}

/**
 * A short, stable slug of a label set for cache volume tags ("{labels}"), so runners of different
 * shapes do not share (and thrash) one cache: sorted names, lowercase, [a-z0-9-] only.
 */
export function labelSlug(labels: readonly string[]): string {
  const names = [...new Set(labels.map((l) => labelName(l).toLowerCase()).filter((n) => n !== ""))].sort();
  const slug = names
    .join("-")
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^-|-$/g, "");
  if (slug.length <= 48) return slug || "none";
  // Long sets keep a readable prefix plus a hash of the whole so they stay distinct.
  let h = 0x811c9dc5;
  for (const ch of names.join("\n")) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return `${slug.slice(0, 39).replace(/-$/, "")}-${h.toString(16).padStart(8, "0")}`;
}

/** A cache volume tag template: `{labels}` becomes the slug of the runner's label names, so shapes do not share a cache. */
export function cacheTag(template: string, labels: readonly string[]): string {
  return template.replace(/\{labels\}/g, () => labelSlug(labels));
}
