import { matchTarget } from "../../../src/autoscaler/match.js";
import { sameNames } from "../../../src/autoscaler/labels.js";
import { targetName } from "../../../src/config/autoscaler-schema.js";
import type { Delivery } from "../forge.js";
import { WORKFLOW_JOB_EVENTS } from "../forge.js";
import type { Policy, SimContext } from "./policy.js";

const POLL_MS = 30_000;

/**
 * The original autoscaler, as issue 13 describes it: a poll every 30 s asks for at most one runner
 * (for the first target with more waiting jobs than unbusy runners); each workflow_job "queued"
 * delivery asks for one runner for its job; the first workflow_job delivery stops polling for good.
 * Runners are not pinned and there is no warm pool.
 */
export class OriginalPolicy implements Policy {
  private polling = true;
  private seq = 0;

  constructor(private readonly ctx: SimContext) {}

  start(): void {
    this.poll();
  }

  onDelivery(d: Delivery): void {
    if (!WORKFLOW_JOB_EVENTS.has(d.event)) return;
    this.polling = false;
    if (d.event !== "queued") return;
    const t = matchTarget(this.targets(), d.job.runsOn);
    if (t) this.ctx.dispatcher.dispatch(`original:job:${d.job.id}`, { labels: [...t.labels], ttlMs: t.ttl });
  }

  private targets() {
    return this.ctx.deployment.autoscaler.targets.map((t) => ({ ...t, name: targetName(t) }));
  }

  private poll(): void {
    if (!this.polling) return;
    const { forge, dispatcher } = this.ctx;
    const targets = this.targets();
    const waiting = forge.jobList().filter((j) => j.status === "waiting");
    const unbusy = dispatcher.live().filter((r) => !r.busy);
    for (const t of targets) {
      const w = waiting.filter((j) => matchTarget(targets, j.runs_on) === t).length;
      const free = unbusy.filter((r) => sameNames(r.labels, t.labels)).length;
      if (w > free) {
        dispatcher.dispatch(`original:poll:${t.name}:${++this.seq}`, { labels: [...t.labels], ttlMs: t.ttl });
        break;
      }
    }
    this.ctx.q.after(POLL_MS, () => this.poll());
  }
}
