import type { Logger } from "pino";
import type { InstanceConfig } from "../config/autoscaler-schema.js";
import { targetName, warmRetireBeforeMs } from "../config/autoscaler-schema.js";
import { formatDuration } from "../config/duration.js";
import type { ActionRunJob } from "../forgejo/types.js";
import { ArrivalLog, autoMinIdle } from "./auto-idle.js";
import type { DispatchBody } from "./dispatcher-types.js";
import { matchTarget } from "./match.js";
import { isWaiting } from "./plan.js";
import type { PlanTarget } from "./plan.js";
import { effectiveMinIdle } from "./schedule.js";

/**
 * An instance's configured targets as the planner and the dispatcher see them: the warm-pool size
 * in force (schedule, and min_idle_auto from the arrivals seen), and the request body per target.
 */
export class InstanceTargets {
  private readonly lastPeriods = new Map<string, number | undefined>();
  /** When jobs were first seen waiting, per target, for min_idle_auto. */
  private readonly arrivals = new ArrivalLog();

  constructor(
    private readonly config: InstanceConfig,
    private readonly log: Logger,
  ) {}

  /** The request body for a target, without `job`. */
  bodyFor(target: string): Omit<DispatchBody, "job"> {
    const t = this.config.targets.find((x) => targetName(x) === target);
    if (!t) throw new Error(`unknown target ${target}`);
    const body: Omit<DispatchBody, "job"> = { count: 1, labels: [...t.labels], scope: this.config.scope };
    if (t.ttl !== undefined) body.ttl = formatDuration(t.ttl);
    if (t.machine_type) body.machine_type = t.machine_type;
    if (t.image) body.image = t.image;
    if (Object.keys(t.env).length > 0) body.env = { ...t.env };
    return body;
  }

  /** The targets to plan with at `at` (ms); logs when a schedule period starts or ends. */
  planTargets(at: number): PlanTarget[] {
    return this.config.targets.map((t) => {
      const eff = effectiveMinIdle(t, at);
      const name = targetName(t);
      const auto = t.min_idle_auto;
      if (auto)
        eff.minIdle = Math.max(
          eff.minIdle,
          autoMinIdle(this.arrivals.arrivals(name), at, { max: auto.max, windowMs: auto.window, bootMs: auto.boot_time }),
        );
      if (this.lastPeriods.get(name) !== eff.period) {
        if (this.lastPeriods.has(name))
          this.log.info({ target: name, minIdle: eff.minIdle, period: eff.period ?? null }, "warm pool size changed by schedule");
        this.lastPeriods.set(name, eff.period);
      }
      return {
        name,
        labels: t.labels,
        minIdle: eff.minIdle,
        maxRunners: t.max_runners,
        warmIdleTimeoutMs: t.warm_idle_timeout,
        warmRetireBeforeMs: warmRetireBeforeMs(t),
      };
    });
  }

  /** Jobs seen waiting for the first time count as arrivals of their target (min_idle_auto). */
  noteArrivals(jobs: readonly ActionRunJob[], at: number): void {
    const targets = this.config.targets.map((t) => ({ name: targetName(t), labels: t.labels }));
    const keep = Math.max(3_600_000, ...this.config.targets.map((t) => t.min_idle_auto?.window ?? 0));
    const seen = jobs.filter(isWaiting).flatMap((j) => {
      const t = matchTarget(targets, j.runs_on);
      return t ? [{ id: j.id, target: t.name }] : [];
    });
    this.arrivals.note(seen, at, keep);
  }
}
