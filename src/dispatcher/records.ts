import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { Metrics } from "../http/metrics.js";
import { isLegalTransition } from "../api/states.js";
import { StateUnavailableError } from "../store/errors.js";
import type { RunnerPatch, RunnerRecord, RunnerState, Store, WriteFence } from "../store/types.js";

import { pause } from "./pause.js";

/** Pauses between attempts to write a record while the state database is unavailable. */
const DURABLE_FIRST_PAUSE_MS = 250;
const DURABLE_MAX_PAUSE_MS = 5_000;

/** A move the state machine (RUNNER_TRANSITIONS) does not allow: a bug in the caller, never a race. */
export class IllegalTransitionError extends Error {
  constructor(name: string, from: readonly RunnerState[], to: RunnerState) {
    const illegal = from.filter((s) => !isLegalTransition(s, to));
    super(`runner ${name}: illegal transition ${illegal.join(", ")} -> ${to} (RUNNER_TRANSITIONS in src/api/states.ts)`);
    this.name = "IllegalTransitionError";
  }
}

/**
 * The store plus what every state change must also do: log it with the runner's name and instance,
 * count it, and wake anyone waiting on that runner (?wait=launched|finished).
 */
export class Records {
  constructor(
    readonly store: Store,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    readonly now: () => Date,
    /** Shared with the fenced views, so a change made through any of them wakes every listener. */
    private readonly events = new EventEmitter().setMaxListeners(0),
  ) {}

  /**
   * The same records whose writes commit only while `fence` (this replica's lease) holds
   * (Store.fenced): for the work only the lease holder does. Changes reach the same listeners.
   */
  fenced(fence: WriteFence): Records {
    return new Records(this.store.fenced(fence), this.logger, this.metrics, this.now, this.events);
  }

  async transition(
    r: Pick<RunnerRecord, "name">,
    from: readonly RunnerState[],
    to: RunnerState,
    reason: string,
    patch?: RunnerPatch,
  ): Promise<RunnerRecord | undefined> {
    // Every state in `from` must allow `to`: the compare-and-set may find the runner in any of them.
    if (!from.every((s) => isLegalTransition(s, to))) throw new IllegalTransitionError(r.name, from, to);
    const updated = await this.store.transition(r.name, from, to, reason, patch, this.now());
    if (!updated) return undefined;
    this.metrics.runnerTransitions.inc({ to });
    const level = to === "failed" ? "warn" : "info";
    // A finishing reason starts with its outcome ("finishing: …", "failing: …"): do not say the state twice.
    const said = reason.startsWith(`${to}: `) ? reason.slice(to.length + 2) : reason;
    this.logger[level](
      { runner: updated.name, instance: updated.instanceId, dispatch: updated.dispatchId, job: updated.job?.id, state: to },
      `runner ${updated.name} -> ${to}: ${said}`,
    );
    this.events.emit("change", updated);
    return updated;
  }

  async update(name: string, patch: RunnerPatch): Promise<RunnerRecord | undefined> {
    const updated = await this.store.update(name, patch, this.now());
    if (updated) this.events.emit("change", updated);
    return updated;
  }

  /**
   * Makes a write that the dispatcher must not skip or act around (a launch's steps and outcome):
   * while the state database is unavailable the write is retried with backoff, without limit,
   * rather than failing the runner. Only `signal` (shutdown) ends the wait, with the
   * StateUnavailableError; the next start then settles the runner from what Namespace shows.
   * Other errors are thrown at once.
   */
  async durably<T>(what: string, write: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let warned = false;
    for (let wait = DURABLE_FIRST_PAUSE_MS; ; wait = Math.min(wait * 2, DURABLE_MAX_PAUSE_MS)) {
      try {
        const result = await write();
        if (warned) this.logger.info({ record: what }, `recorded ${what} once the state database accepted writes again`);
        return result;
      } catch (err) {
        if (!(err instanceof StateUnavailableError) || signal?.aborted) throw err;
        if (!warned)
          this.logger.warn(
            { record: what, err: err.message },
            `cannot record ${what} yet; retrying until the state database accepts writes`,
          );
        warned = true;
        await pause(wait, signal);
      }
    }
  }

  /** Calls `listener` on every change until the returned function is called. */
  onChange(listener: (r: RunnerRecord) => void): () => void {
    this.events.on("change", listener);
    return () => this.events.off("change", listener);
  }
}
