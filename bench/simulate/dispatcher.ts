import type { DispatcherRunner, DispatchResponse } from "../../src/autoscaler/dispatcher-types.js";
import type { CapConfig } from "../../src/config/dispatcher-schema.js";
import { admit } from "../../src/dispatcher/caps.js";
import { scopeKey } from "../../src/forgejo/scope.js";
import type { JobRef, Platform, RunnerRecord, RunnerState } from "../../src/store/types.js";
import { INSTANCE_HOLDING_STATES } from "../../src/api/states.js";
import type { EventQueue } from "./events.js";
import type { Forge } from "./forge.js";
import type { Distribution, Rng } from "./rng.js";
import { draw } from "./rng.js";

export interface DispatcherModelConfig {
  /** namespace.max_runners: live runners at most. */
  maxRunners: number;
  /** dispatcher.caps: limits per label set or scope, enforced by the same admit(). */
  caps: CapConfig[];
  /** namespace.max_parallel: launches (instance boots) in progress at most. */
  maxParallel: number;
  /** dispatcher.supervise_interval: an instance that ended is noticed on the next tick. */
  superviseMs: number;
  /** dispatcher.queue_timeout: a pending runner not launched by then fails. */
  queueTimeoutMs: number;
  /** namespace.duration: the TTL of a request without one. */
  defaultTtlMs: number;
  /** Boot time per platform: from the launch until forgejo-runner asks for work. */
  boot: Record<Platform, Distribution>;
  platformOf(labels: readonly string[]): Platform;
}

export interface LaunchRequest {
  labels: string[];
  ttlMs?: number | undefined;
  job?: JobRef | undefined;
}

/** Why an instance ended: its runner exited (after a job, or finding its pinned job gone), its TTL, a scale-down. */
export type EndCause = "exited" | "ttl" | "retired";

/** One Namespace instance, for the cost figures. */
export interface InstanceLife {
  runner: string;
  platform: Platform;
  pinned: boolean;
  launchedAt: number;
  readyAt?: number | undefined;
  endedAt?: number | undefined;
  endCause?: EndCause | undefined;
}

interface SimRecord {
  rec: RunnerRecord;
  key: string;
  instance?: InstanceLife | undefined;
}

const SCOPE = { level: "instance" } as const;

/**
 * The dispatcher and Namespace in memory: requests are deduplicated by idempotency key, pending
 * runners are admitted by the real `admit()` (namespace.max_runners) and at most max_parallel boot
 * at a time; an instance boots for a drawn time, registers, runs one job (or idles until its TTL)
 * and ends; the supervisor notices the end on its next tick.
 */
export class DispatcherModel {
  readonly instances: InstanceLife[] = [];
  private readonly records = new Map<string, SimRecord>();
  private readonly byKey = new Map<string, SimRecord[]>();
  private seq = 0;
  private passing = false;

  constructor(
    private readonly q: EventQueue,
    private readonly forge: Forge,
    private readonly rng: Rng,
    private readonly cfg: DispatcherModelConfig,
  ) {}

  /** POST /api/v1/dispatch with count 1: a known key is answered with its runners (200), a new one creates one (202). */
  dispatch(key: string, req: LaunchRequest): { kind: "created" | "duplicate"; response: DispatchResponse } {
    const known = this.byKey.get(key);
    if (known) return { kind: "duplicate", response: this.answer(key, known) };
    const r = this.create(key, req);
    this.byKey.set(key, [r]);
    this.pass();
    return { kind: "created", response: this.answer(key, [r]) };
  }

  /** GET /api/v1/runners?state=…: the runners in the given states, as the autoscaler reads them. */
  list(states: readonly string[]): DispatcherRunner[] {
    const out: DispatcherRunner[] = [];
    for (const { rec } of this.records.values()) {
      if (!states.includes(rec.state)) continue;
      out.push({
        name: rec.name,
        state: rec.state,
        reason: rec.reason,
        labels: [...rec.labels],
        job: rec.job ?? null,
        created_at: rec.createdAt,
        updated_at: rec.updatedAt,
        expires_at: rec.expiresAt ?? null,
      });
    }
    return out;
  }

  /** Runners not yet finished, with whether they have taken a job (for the policies that keep their own books). */
  live(): { name: string; labels: string[]; state: RunnerState; pinned: boolean; busy: boolean }[] {
    return [...this.records.values()]
      .filter((r) => r.rec.state !== "done" && r.rec.state !== "failed" && !r.instance?.endedAt)
      .map((r) => ({
        name: r.rec.name,
        labels: r.rec.labels,
        state: r.rec.state,
        pinned: r.rec.job !== undefined,
        busy: r.rec.state === "running" && !this.forge.isIdle(r.rec.name),
      }));
  }

  /** Stops an idle runner (a scale-down). False when it is not idle (booting, busy or gone). */
  retire(name: string): boolean {
    const r = this.records.get(name);
    if (!r || r.rec.state !== "running" || !this.forge.isIdle(name)) return false;
    this.forge.remove(name);
    this.end(r, "retired");
    this.transition(r, "done", "stopped by a scale-down");
    this.pass();
    return true;
  }

  /** The forge says the runner's process exited (job done, or its pinned job was gone). */
  runnerExited(name: string): void {
    const r = this.records.get(name);
    if (r) this.end(r, "exited");
  }

  private answer(key: string, rs: readonly SimRecord[]): DispatchResponse {
    return { dispatch_id: `d-${key}`, runners: rs.map((r) => ({ name: r.rec.name, state: r.rec.state })) };
  }

  private create(key: string, req: LaunchRequest): SimRecord {
    const now = this.q.now;
    const iso = new Date(now).toISOString();
    const name = `nscloud-${String(++this.seq).padStart(5, "0")}`;
    const rec: RunnerRecord = {
      name,
      dispatchId: `d-${key}`,
      state: "pending",
      reason: "accepted",
      platform: this.cfg.platformOf(req.labels),
      labels: [...req.labels],
      scope: SCOPE,
      machineType: "sim",
      image: "sim",
      ttlMs: req.ttlMs ?? this.cfg.defaultTtlMs,
      env: {},
      job: req.job,
      launchAttempts: 0,
      createdAt: iso,
      updatedAt: iso,
      queueDeadline: new Date(now + this.cfg.queueTimeoutMs).toISOString(),
      history: [],
    };
    const r: SimRecord = { rec, key };
    this.records.set(name, r);
    this.q.at(now + this.cfg.queueTimeoutMs, () => this.pass());
    return r;
  }

  private transition(r: SimRecord, to: RunnerState, reason: string): void {
    r.rec.state = to;
    r.rec.reason = reason;
    r.rec.updatedAt = new Date(this.q.now).toISOString();
  }

  /** The scheduler's admission pass: queue timeouts, then caps (the real admit()), then launch slots. */
  private pass(): void {
    if (this.passing) return;
    this.passing = true;
    try {
      const now = this.q.now;
      const all = [...this.records.values()];
      const eligible: RunnerRecord[] = [];
      for (const r of all) {
        if (r.rec.state !== "pending") continue;
        if (now >= Date.parse(r.rec.queueDeadline)) this.transition(r, "failed", "not launched within dispatcher.queue_timeout");
        else eligible.push(r.rec);
      }
      if (eligible.length === 0) return;
      const live = all.filter((r) => INSTANCE_HOLDING_STATES.includes(r.rec.state)).map((r) => r.rec);
      const { admit: admitted } = admit(eligible, live, { maxRunners: this.cfg.maxRunners, caps: this.cfg.caps }, (r) => scopeKey(r.scope));
      const launching = all.filter((r) => r.rec.state === "launching").length;
      for (const rec of admitted.slice(0, Math.max(0, this.cfg.maxParallel - launching)))
        this.launch(this.records.get(rec.name) as SimRecord);
    } finally {
      this.passing = false;
    }
  }

  private launch(r: SimRecord): void {
    const { rec } = r;
    this.transition(r, "launching", "launch slot acquired");
    const pin = rec.job?.handle ? { id: rec.job.id, handle: rec.job.handle } : undefined;
    this.forge.register(rec.name, rec.labels, pin);
    const life: InstanceLife = { runner: rec.name, platform: rec.platform, pinned: pin !== undefined, launchedAt: this.q.now };
    rec.expiresAt = new Date(this.q.now + rec.ttlMs).toISOString();
    r.instance = life;
    this.instances.push(life);
    this.q.after(draw(this.cfg.boot[rec.platform], this.rng), () => {
      if (rec.state !== "launching") return;
      life.readyAt = this.q.now;
      this.transition(r, "running", "instance ready");
      this.forge.online(rec.name);
      this.pass();
    });
    // The Namespace deadline: whatever the runner is doing, the instance ends.
    this.q.after(rec.ttlMs, () => {
      if (life.endedAt !== undefined) return;
      this.forge.remove(rec.name);
      this.end(r, "ttl");
    });
  }

  /** The instance is gone; the supervisor finishes the record on its next tick. */
  private end(r: SimRecord, cause: EndCause): void {
    if (!r.instance || r.instance.endedAt !== undefined) return;
    r.instance.endedAt = this.q.now;
    r.instance.endCause = cause;
    const tick = Math.floor(this.q.now / this.cfg.superviseMs + 1) * this.cfg.superviseMs;
    this.q.at(tick, () => {
      if (r.rec.state === "done" || r.rec.state === "failed") return;
      this.transition(r, "done", "instance ended");
      this.pass();
    });
  }
}
