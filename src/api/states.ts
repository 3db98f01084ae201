/**
 * A runner's states at the dispatcher, the moves between them, and the named sets of states each
 * reader needs. The dispatcher records and serves these states; the autoscaler and the CLI read
 * them from GET /api/v1/runners.
 *
 * pending: accepted, waiting for a launch slot or a cap. launching: credentials and instance being
 * created. running: instance alive. finishing: instance being destroyed, registration removed,
 * headed for the runner's `outcome`. done, failed: ended.
 */
export const RUNNER_STATES = ["pending", "launching", "running", "finishing", "done", "failed"] as const;
export type RunnerState = (typeof RUNNER_STATES)[number];

/** Where a finishing runner is headed, recorded as it enters `finishing`. */
export type RunnerOutcome = "done" | "failed";

/**
 * Every legal move, by the state it starts from. Who makes each one:
 * - pending → launching: the scheduler took a launch slot.
 * - pending → failed: not launched before its queue deadline.
 * - pending → finishing: cancelled before any launch (finishRunner; nothing to destroy).
 * - launching → running: the instance is up (launch, or recovery adopting an instance).
 * - launching → pending: a retryable launch failure, or recovery of a launch interrupted before
 *   an instance existed.
 * - launching → finishing: cancelled, or the launch failed for good.
 * - launching → done: recovery finds the interrupted launch's runner already ran its job.
 * - launching → failed: recovery finds the interrupted launch past its queue deadline.
 * - running → finishing: job done, TTL reached, instance gone, cancelled.
 * - finishing → done | failed: instance destroyed and registration removed; to its `outcome`.
 * - done, failed: final.
 */
export const RUNNER_TRANSITIONS: Readonly<Record<RunnerState, readonly RunnerState[]>> = {
  pending: ["launching", "failed", "finishing"],
  launching: ["running", "pending", "finishing", "done", "failed"],
  running: ["finishing"],
  finishing: ["done", "failed"],
  done: [],
  failed: [],
};

export function isLegalTransition(from: RunnerState, to: RunnerState): boolean {
  return RUNNER_TRANSITIONS[from].includes(to);
}

/** Whether `state` (read from a client or a dispatcher of another version: any text) is one of `states`. */
export function isOneOf(states: readonly RunnerState[], state: string): boolean {
  return (states as readonly string[]).includes(state);
}

/** Ended: nothing more happens to the runner; its record is kept for a while, then pruned. */
export const TERMINAL_STATES: readonly RunnerState[] = ["done", "failed"];

/**
 * States in which a runner may hold a Namespace instance (being created, alive, being destroyed):
 * what the supervisor watches and what caps count.
 */
export const INSTANCE_HOLDING_STATES: readonly RunnerState[] = ["launching", "running", "finishing"];

/**
 * States in which a runner may still take a job, so it counts toward a target's demand at the
 * autoscaler. "finishing" is on its way out.
 */
export const COUNTS_TOWARD_DEMAND_STATES: readonly RunnerState[] = ["pending", "launching", "running"];

/** Accepted and not ended: what the autoscaler watches and the CLI lists by default. */
export const IN_FLIGHT_STATES: readonly RunnerState[] = ["pending", "launching", "running", "finishing"];
