import type { Logger } from "pino";
import { errorMessage } from "../shared/error-message.js";

/**
 * The right to do the work that must happen once (launching, supervising, recovering, sweeping;
 * the autoscaler's reconcile passes). One replica holds it at a time; the others serve requests.
 */
export interface Lease {
  readonly name: string;
  /** This replica's identity in the lease table (unique per process). */
  readonly holder: string;
  /**
   * Whether this replica may act now. Computed from the local monotonic clock at each call, so a
   * replica resumed after a pause answers false before it has talked to the database again.
   */
  held(): boolean;
  /** The fencing token of the holding in force (increases at every change of holder), or undefined. */
  epoch(): number | undefined;
  /** Calls `listener` when this replica gains the lease (with the new epoch) or loses it. */
  onChange(listener: (change: LeaseChange) => void): () => void;
  status(): LeaseStatus;
  /** Starts claiming and renewing; resolves once the first claim has been answered (or failed). */
  start(): Promise<void>;
  /** Stops renewing and gives the lease up (callers stop acting first), so another replica takes over at once. */
  stop(): Promise<void>;
}

export type LeaseChange = { held: true; epoch: number } | { held: false; epoch: number; why: string };

export interface LeaseStatus {
  name: string;
  /** "leader": acts; "standby": serves requests, ready to take over; "single": no other replica can exist. */
  role: "leader" | "standby" | "single";
  holder: string;
  epoch: number | null;
  /** The other replica holding it, when known (standby). */
  heldBy: string | null;
  /** The database's expiry of that holding (standby), ISO. */
  heldUntil: string | null;
  /** Why the last attempt to take or renew it failed, when it did. */
  lastError: string | null;
  acquisitions: number;
  losses: number;
}

/** What the database answers to "take or renew this lease for me". */
export type LeaseClaim = { ok: true; epoch: number } | { ok: false; holder: string; expiresAt: string };

/** The storage side of a lease: one statement each, timed by the database's clock. */
export interface LeaseBackend {
  /** Takes the lease when it is free or expired, renews it when `holder` has it; never takes it from a live holder. */
  claim(name: string, holder: string, ttlMs: number): Promise<LeaseClaim>;
  /** Ends `holder`'s holding of `epoch` now (nothing when it is not theirs any more). */
  release(name: string, holder: string, epoch: number): Promise<void>;
}

/** The lease of a single replica (SQLite): always held, nothing to renew. */
export class SoleLease implements Lease {
  readonly holder = "this-process";
  constructor(readonly name: string) {}
  held(): boolean {
    return true;
  }
  epoch(): number {
    return 1;
  }
  onChange(): () => void {
    return () => {};
  }
  status(): LeaseStatus {
    return {
      name: this.name,
      role: "single",
      holder: this.holder,
      epoch: 1,
      heldBy: null,
      heldUntil: null,
      lastError: null,
      acquisitions: 0,
      losses: 0,
    };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}

export interface LeaseKeeperOptions {
  name: string;
  holder: string;
  backend: LeaseBackend;
  /** How long a claim lasts in the database without renewal. */
  ttlMs: number;
  /**
   * How much earlier than the database's expiry this replica stops acting: covers clocks that run
   * at slightly different rates and the time between checking held() and the action. Default ttl/5.
   */
  marginMs?: number;
  logger: Logger;
  /** Monotonic milliseconds (tests pass a fake). */
  monotonic?: () => number;
  /** Tests drive renew() by hand. */
  timers?: boolean;
  /** Called at the end of stop(): closes what the lease used (its database connection). */
  close?: () => Promise<void>;
}

/**
 * Keeps a lease: claims or renews it every ttl/3 and derives held() from the local monotonic clock.
 *
 * Why this never lets two replicas act together: a successful claim sent at local time `s` makes
 * the database's expiry at least s + ttl (the database stamps it after it received the statement),
 * and this replica acts only until s + ttl - margin. Another replica's claim succeeds only once the
 * database's clock has passed that expiry. A replica paused (SIGSTOP, a long GC, a frozen VM) finds
 * on resume that its monotonic deadline has passed and stops before it writes or launches anything.
 */
export class LeaseKeeper implements Lease {
  readonly name: string;
  readonly holder: string;
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private readonly monotonic: () => number;
  private readonly listeners = new Set<(change: LeaseChange) => void>();
  private current: number | undefined;
  private deadline = Number.NEGATIVE_INFINITY;
  /** What listeners were last told. */
  private announced: number | undefined;
  private other: { holder: string; expiresAt: string } | undefined;
  private lastError: string | undefined;
  private acquisitions = 0;
  private losses = 0;
  private timer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly opts: LeaseKeeperOptions) {
    this.name = opts.name;
    this.holder = opts.holder;
    this.ttlMs = opts.ttlMs;
    this.marginMs = opts.marginMs ?? Math.round(opts.ttlMs / 5);
    this.monotonic = opts.monotonic ?? (() => performance.now());
    if (this.marginMs >= this.ttlMs / 2)
      throw new Error(`lease margin ${this.marginMs} ms must be less than half the TTL ${this.ttlMs} ms`);
  }

  held(): boolean {
    const ok = this.current !== undefined && this.monotonic() < this.deadline;
    // Noticed here first (after a pause, before the expiry timer fires): tell the listeners soon.
    if (!ok && this.announced !== undefined) queueMicrotask(() => this.announce());
    return ok;
  }

  epoch(): number | undefined {
    return this.held() ? this.current : undefined;
  }

  onChange(listener: (change: LeaseChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): LeaseStatus {
    const held = this.held();
    return {
      name: this.name,
      role: held ? "leader" : "standby",
      holder: this.holder,
      epoch: held ? (this.current ?? null) : null,
      heldBy: held ? null : (this.other?.holder ?? null),
      heldUntil: held ? null : (this.other?.expiresAt ?? null),
      lastError: this.lastError ?? null,
      acquisitions: this.acquisitions,
      losses: this.losses,
    };
  }

  start(): Promise<void> {
    if (this.opts.timers === false) return Promise.resolve();
    // Every ttl/3 from the start of the last attempt: a slow claim does not push the next one later.
    const loop = (): Promise<void> => {
      if (this.stopped) return Promise.resolve();
      const began = this.monotonic();
      return this.renew().finally(() => {
        if (this.stopped) return;
        this.timer = setTimeout(() => void loop(), Math.max(1, Math.round(this.ttlMs / 3 - (this.monotonic() - began))));
      });
    };
    return loop();
  }

  /** One claim-or-renew; runs alone (a call during one joins it). */
  renew(): Promise<void> {
    this.renewing ??= this.claimOnce().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async claimOnce(): Promise<void> {
    const sent = this.monotonic();
    try {
      const claim = await this.opts.backend.claim(this.name, this.holder, this.ttlMs);
      this.lastError = undefined;
      if (claim.ok) {
        // A new epoch for us means our previous holding ended (expired while we were away): a new term.
        if (this.current !== claim.epoch) {
          this.deadline = Number.NEGATIVE_INFINITY;
          this.announce("expired and taken again");
        }
        this.current = claim.epoch;
        this.deadline = sent + this.ttlMs - this.marginMs;
        this.other = undefined;
      } else {
        this.current = undefined;
        this.deadline = Number.NEGATIVE_INFINITY;
        this.other = { holder: claim.holder, expiresAt: claim.expiresAt };
      }
    } catch (err) {
      // The holding stands until its deadline: a database that is away for less than that costs nothing.
      const message = errorMessage(err);
      if (this.lastError === undefined)
        this.opts.logger.warn({ lease: this.name, err: message }, `cannot renew the ${this.name} lease; retrying`);
      this.lastError = message;
    }
    this.announce();
  }

  /** Tells listeners what changed since they were last told, and arms the expiry timer. */
  private announce(lossWhy?: string): void {
    const held = this.current !== undefined && this.monotonic() < this.deadline ? this.current : undefined;
    if (held === this.announced) {
      this.armExpiry();
      return;
    }
    const before = this.announced;
    this.announced = held;
    if (before !== undefined) {
      this.losses++;
      const why = lossWhy ?? (this.lastError ? `not renewed in time: ${this.lastError}` : "expired or taken by another replica");
      this.opts.logger.warn(
        { lease: this.name, epoch: before, holder: this.holder },
        `lost the ${this.name} lease (epoch ${before}): ${why}; stopped acting`,
      );
      this.emit({ held: false, epoch: before, why });
    }
    if (held !== undefined) {
      this.acquisitions++;
      this.opts.logger.info(
        { lease: this.name, epoch: held, holder: this.holder },
        `acquired the ${this.name} lease (epoch ${held}); acting`,
      );
      this.emit({ held: true, epoch: held });
    }
    this.armExpiry();
  }

  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (this.announced === undefined || this.opts.timers === false || this.stopped) return;
    this.expiryTimer = setTimeout(() => this.announce(), Math.max(0, this.deadline - this.monotonic()) + 1);
  }

  private emit(change: LeaseChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch (err) {
        this.opts.logger.error({ lease: this.name, err: errorMessage(err) }, "lease listener failed");
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    await this.renewing;
    const epoch = this.current;
    const wasHeld = this.held();
    this.current = undefined;
    this.deadline = Number.NEGATIVE_INFINITY;
    this.announced = undefined;
    try {
      if (epoch !== undefined && wasHeld) {
        await this.opts.backend.release(this.name, this.holder, epoch);
        this.opts.logger.info({ lease: this.name, epoch }, `released the ${this.name} lease`);
      }
    } catch (err) {
      this.opts.logger.warn(
        { lease: this.name, err: errorMessage(err) },
        `could not release the ${this.name} lease; another replica takes it over when it expires`,
      );
    } finally {
      await this.opts.close?.();
    }
  }
}
