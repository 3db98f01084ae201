import { formatDuration } from "../config/duration.js";
import type { InstanceInfo } from "../namespace/launcher.js";
import { LABEL_RUNNER } from "../namespace/launcher.js";
import type { Sightings } from "../shared/sightings.js";
import type { RunnerRecord } from "../store/types.js";

/** How a runner ends: its final state and the reason recorded with it. */
export interface EndingOutcome {
  to: "done" | "failed";
  reason: string;
}

/**
 * Why a runner ends on this tick. `finishing`: its outcome is recorded already, its finish is
 * completed. `ttl`, `consumed`: the outcome is decided here. `instance-ended`: its instance ended
 * on its own; whether the job ran is asked of Forgejo (see `endedOutcome`).
 */
export type Ending =
  | { runner: RunnerRecord; why: "finishing" }
  | { runner: RunnerRecord; why: "ttl" | "consumed"; outcome: EndingOutcome }
  | { runner: RunnerRecord; why: "instance-ended" };

export interface JudgeInput {
  /** One platform's live runner records. */
  runners: readonly RunnerRecord[];
  /** The instance ids this platform's listing shows. */
  alive: ReadonlySet<string>;
  /** Runners whose ephemeral registration Forgejo removed (confirmed by RegistrationWatch). */
  consumed: ReadonlySet<string>;
  now: number;
  /**
   * This platform's runners whose instance a look did not show. The only state judging touches:
   * this look's misses are counted, every other runner's are forgotten.
   */
  misses: Sightings<string>;
}

/**
 * The supervisor's decision for one platform's listing, from plain data: which runners end and
 * why. A running runner ends when its TTL is reached, when Forgejo removed its ephemeral
 * registration while its instance lives on, or when two consecutive looks miss its instance.
 */
export function judgeRunners(input: JudgeInput): Ending[] {
  const endings: Ending[] = [];
  const missing: string[] = [];
  for (const r of input.runners) {
    if (r.state === "finishing") {
      endings.push({ runner: r, why: "finishing" });
      continue;
    }
    if (r.state !== "running" || !r.instanceId) continue;
    if (r.expiresAt && input.now >= Date.parse(r.expiresAt)) {
      endings.push({
        runner: r,
        why: "ttl",
        outcome: { to: "failed", reason: `TTL ${formatDuration(r.ttlMs)} reached before the job finished; instance destroyed` },
      });
      continue;
    }
    if (input.alive.has(r.instanceId)) {
      // Windows instances (and macOS ones started through the nsc fallback) do not end with
      // their job; Forgejo deleting the ephemeral runner says the job is done.
      if (input.consumed.has(r.name)) {
        endings.push({
          runner: r,
          why: "consumed",
          outcome: { to: "done", reason: `job finished: Forgejo removed the ephemeral runner; instance ${r.instanceId} destroyed` },
        });
      }
      continue;
    }
    if (!input.misses.see(r.name)) {
      missing.push(r.name);
      continue;
    }
    endings.push({ runner: r, why: "instance-ended" });
  }
  // A runner seen again, ended, cancelled or gone since the last look starts over.
  input.misses.keepOnly(missing);
  return endings;
}

/** Whether an ended instance's outcome needs Forgejo's word: only an ephemeral registration tells whether the job ran. */
export function asksForgejo(r: RunnerRecord): r is RunnerRecord & { forgejoRunnerId: number } {
  return r.registration === "ephemeral" && r.forgejoRunnerId !== undefined;
}

/**
 * The outcome of a runner whose instance ended on its own, from what Forgejo says about its
 * ephemeral registration: "removed" (Forgejo deletes it once its job is done,
 * docs/upstream-contracts.md#ephemeral-runners), "kept" (the job never ran), an error (Forgejo
 * could not be asked), or undefined when Forgejo was not asked (see `asksForgejo`).
 */
export function endedOutcome(r: RunnerRecord, registration: "removed" | "kept" | { error: string } | undefined): EndingOutcome {
  if (registration === undefined) return { to: "done", reason: `instance ${r.instanceId} ended: forgejo-runner exited` };
  if (registration === "removed") return { to: "done", reason: `instance ${r.instanceId} ended after its job finished` };
  if (registration === "kept")
    return { to: "failed", reason: `instance ${r.instanceId} ended before forgejo-runner finished a job; registration removed` };
  return { to: "done", reason: `instance ${r.instanceId} ended (could not ask Forgejo whether the job ran: ${registration.error})` };
}

/**
 * Instances carrying our owner label that no live record explains: not the recorded instance of
 * the runner they are named for, nor (while that runner is launching) one its launch in flight, or
 * a launch that recorded no instance yet, may still claim.
 */
export function unexplainedInstances(
  instances: readonly InstanceInfo[],
  runners: readonly RunnerRecord[],
  isLaunching: (name: string) => boolean,
): InstanceInfo[] {
  const byName = new Map(runners.map((r) => [r.name, r]));
  return instances.filter((inst) => {
    const owner = byName.get(inst.labels[LABEL_RUNNER] ?? "");
    if (owner === undefined) return true;
    if (owner.instanceId === inst.instanceId) return false;
    return !(owner.state === "launching" && (isLaunching(owner.name) || !owner.instanceId));
  });
}
