import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { Metrics } from "../http/metrics.js";
import type { RunnerPatch, RunnerRecord, RunnerState, Store } from "../store/types.js";

/**
 * The store plus what every state change must also do: log it with the runner's name and instance,
 * count it, and wake anyone waiting on that runner (?wait=launched|finished).
 */
export class Records {
  private readonly events = new EventEmitter();

  constructor(
    readonly store: Store,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    readonly now: () => Date,
  ) {
    this.events.setMaxListeners(0);
  }

  async transition(
    r: Pick<RunnerRecord, "name">,
    from: readonly RunnerState[],
    to: RunnerState,
    reason: string,
    patch?: RunnerPatch,
  ): Promise<RunnerRecord | undefined> {
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

  /** Calls `listener` on every change until the returned function is called. */
  onChange(listener: (r: RunnerRecord) => void): () => void {
    this.events.on("change", listener);
    return () => this.events.off("change", listener);
  }
}
