import type { Lease, LeaseChange, LeaseStatus } from "../../src/ha/lease.js";

/** A lease the test grants and takes away, as the database would for a replica. */
export class ManualLease implements Lease {
  readonly holder: string;
  private isHeld = false;
  private current = 0;
  private readonly listeners = new Set<(c: LeaseChange) => void>();
  stopped = false;

  constructor(
    readonly name = "dispatcher",
    holder = "test-replica",
  ) {
    this.holder = holder;
  }

  held(): boolean {
    return this.isHeld;
  }
  epoch(): number | undefined {
    return this.isHeld ? this.current : undefined;
  }
  onChange(listener: (c: LeaseChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  status(): LeaseStatus {
    return {
      name: this.name,
      role: this.isHeld ? "leader" : "standby",
      holder: this.holder,
      epoch: this.epoch() ?? null,
      heldBy: null,
      heldUntil: null,
      lastError: null,
      acquisitions: 0,
      losses: 0,
    };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {
    this.stopped = true;
    this.isHeld = false;
  }

  /** This replica now holds the lease, with epoch `epoch`. */
  grant(epoch = this.current + 1): void {
    this.current = epoch;
    this.isHeld = true;
    for (const l of [...this.listeners]) l({ held: true, epoch });
  }

  /** The local deadline passed (as for a paused replica): held() is false before anyone is told. */
  expireSilently(): void {
    this.isHeld = false;
  }

  revoke(): void {
    this.isHeld = false;
    for (const l of [...this.listeners]) l({ held: false, epoch: this.current, why: "revoked by the test" });
  }
}
