import type { Logger } from "../http/logger.js";
import { errorMessage } from "../shared/error-message.js";
import { LABEL_OWNER, LABEL_RUNNER } from "./launcher.js";
import type { LaunchSpec } from "./launcher.js";

/**
 * Instances a failed launch may leave behind: one a timed-out create made but nobody has the ID
 * of, one that was created but did not start. Every launcher removes them before it reports the
 * failure; what it cannot remove the orphan sweep finds later by the same labels.
 */

/** Removes an instance, logging (not throwing) when that fails: the orphan sweep retries. */
export async function destroyOrWarn(
  destroy: (instanceId: string) => Promise<void>,
  instanceId: string,
  log: Logger,
  what: string,
): Promise<void> {
  await destroy(instanceId).catch((e: unknown) =>
    log.warn({ instance: instanceId, err: errorMessage(e) }, `could not destroy ${what}; the orphan sweep retries`),
  );
}

/** The labels that find this runner's instances: its name and, when set, the dispatcher owning it. */
export function leftBehindFilter(spec: LaunchSpec): Record<string, string> {
  const filter: Record<string, string> = { [LABEL_RUNNER]: spec.instanceLabels[LABEL_RUNNER] ?? spec.runnerName };
  const owner = spec.instanceLabels[LABEL_OWNER];
  if (owner) filter[LABEL_OWNER] = owner;
  return filter;
}

export interface LeftBehindOptions {
  /** Lists instances by labels (nsc list, the Compute API's ListInstances). */
  list: (labels: Record<string, string>) => Promise<readonly { instanceId: string }[]>;
  destroy: (instanceId: string) => Promise<void>;
  /** Instances the failure named. */
  known?: readonly string[];
  /** Whether to look for more by the runner's labels (only when the failed call may have made one). */
  look: boolean;
  log: Logger;
}

/**
 * Destroys the instances a failed launch may have left: the ones it knows of, and (when `look`)
 * every instance listed with this runner's name and owner. Never throws; returns notes for the
 * launch error and the first instance, which the error names.
 */
export async function destroyLeftBehind(spec: LaunchSpec, o: LeftBehindOptions): Promise<{ notes: string[]; first?: string | undefined }> {
  const leftovers = new Set<string>(o.known ?? []);
  const notes: string[] = [];
  if (o.look) {
    try {
      for (const i of await o.list(leftBehindFilter(spec))) leftovers.add(i.instanceId);
    } catch (listErr) {
      notes.push("could not list instances to look for one left behind; the orphan sweep will find it");
      o.log.warn({ err: errorMessage(listErr) }, "looking for a left-behind instance failed");
    }
  }
  for (const id of leftovers) {
    try {
      await o.destroy(id);
      notes.push(`destroyed instance ${id} it left behind`);
      o.log.info({ instance: id }, "destroyed an instance left behind by a failed launch");
    } catch (destroyErr) {
      notes.push(`could not destroy instance ${id} it left behind; the orphan sweep retries`);
      o.log.warn({ instance: id, err: errorMessage(destroyErr) }, "destroying a left-behind instance failed");
    }
  }
  return { notes, first: [...leftovers][0] };
}

/** " (note; note)" after a launch error's message, or nothing. */
export function withNotes(notes: readonly string[]): string {
  return notes.length ? ` (${notes.join("; ")})` : "";
}
