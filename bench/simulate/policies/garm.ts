import { coversAll, sameNames } from "../../../src/autoscaler/labels.js";
import type { Delivery } from "../forge.js";
import type { Policy, SimContext } from "./policy.js";

// cloudbase/garm's defaults (docs/peers.md §1.1): the job-age backoff, the loops, the lock timeout.
const JOB_AGE_BACKOFF_MS = 30_000;
const CONSUME_MS = 5_000;
const SCALE_DOWN_MS = 60_000;
const RELOCK_MS = 10 * 60_000;
const STALE_CHECK_MS = 5 * 60_000;
const STALE_AGE_MS = 60 * 60_000;
const STALE_BATCH = 5;

interface GarmJob {
  id: number;
  runsOn: readonly string[];
  status: "queued" | "in_progress";
  recordedAt: number;
  lockedAt?: number | undefined;
}

interface Pool {
  labels: readonly string[];
  minIdle: number;
  max: number;
  ttlMs: number | undefined;
}

/**
 * A garm-like pool manager: jobs are known only from webhooks (a lost "queued" delivery makes a
 * job invisible; a lost "in_progress" leaves it looking queued); a recorded job younger than 30 s
 * is left to idle runners, then locked and given an unpinned runner from the first pool whose
 * labels cover it; a job still queued 10 min later is unlocked and tried again. Each pool keeps a
 * fixed min_idle (today's largest scheduled value, all day) and removes half its surplus idle
 * runners every minute. Records older than an hour are checked against the forge, 5 per 5 min.
 */
export class GarmPolicy implements Policy {
  private readonly jobs = new Map<number, GarmJob>();
  private readonly pools: Pool[];
  private seq = 0;

  constructor(private readonly ctx: SimContext) {
    this.pools = ctx.deployment.autoscaler.targets.map((t) => ({
      labels: t.labels,
      minIdle: Math.max(t.min_idle, ...t.min_idle_schedule.map((p) => p.min_idle)),
      max: t.max_runners ?? Infinity,
      ttlMs: t.ttl,
    }));
  }

  start(): void {
    this.every(CONSUME_MS, () => {
      this.consume();
      this.ensureMinIdle();
    });
    this.every(SCALE_DOWN_MS, () => this.scaleDown());
    this.every(STALE_CHECK_MS, () => this.checkStale());
  }

  onDelivery(d: Delivery): void {
    const known = this.jobs.get(d.job.id);
    if (d.event === "queued" && !known)
      this.jobs.set(d.job.id, { id: d.job.id, runsOn: d.job.runsOn, status: "queued", recordedAt: this.ctx.q.now });
    else if (d.event === "in_progress" && known) known.status = "in_progress";
    else if (d.event === "completed") this.jobs.delete(d.job.id);
  }

  private every(ms: number, run: () => void): void {
    const tick = () => {
      run();
      this.ctx.q.after(ms, tick);
    };
    tick();
  }

  private runnersOf(pool: Pool) {
    return this.ctx.dispatcher.live().filter((r) => sameNames(r.labels, pool.labels));
  }

  private create(pool: Pool): void {
    this.ctx.dispatcher.dispatch(`garm:${++this.seq}`, { labels: [...pool.labels], ttlMs: pool.ttlMs });
  }

  private consume(): void {
    const now = this.ctx.q.now;
    for (const j of [...this.jobs.values()].sort((a, b) => a.id - b.id)) {
      if (j.status !== "queued" || now - j.recordedAt < JOB_AGE_BACKOFF_MS) continue;
      if (j.lockedAt !== undefined && now - j.lockedAt < RELOCK_MS) continue;
      const pool = this.pools.find((p) => coversAll(p.labels, j.runsOn));
      if (!pool) continue;
      if (this.runnersOf(pool).length >= pool.max) {
        j.lockedAt = undefined;
        continue;
      }
      this.create(pool);
      j.lockedAt = now;
    }
  }

  private ensureMinIdle(): void {
    for (const pool of this.pools) {
      const runners = this.runnersOf(pool);
      const idle = runners.filter((r) => !r.busy).length;
      const add = Math.min(pool.minIdle - idle, pool.max - runners.length);
      for (let i = 0; i < add; i++) this.create(pool);
    }
  }

  private scaleDown(): void {
    for (const pool of this.pools) {
      const idle = this.runnersOf(pool).filter((r) => r.state === "running" && !r.busy);
      const surplus = idle.length - pool.minIdle;
      if (surplus <= 0) continue;
      for (const r of idle.slice(0, Math.ceil(surplus / 2))) this.ctx.dispatcher.retire(r.name);
    }
  }

  private checkStale(): void {
    const now = this.ctx.q.now;
    const old = [...this.jobs.values()].filter((j) => now - j.recordedAt > STALE_AGE_MS).slice(0, STALE_BATCH);
    for (const j of old) {
      const truth = this.ctx.forge.jobs.get(j.id);
      if (truth?.status !== "waiting") this.jobs.delete(j.id);
    }
  }
}
