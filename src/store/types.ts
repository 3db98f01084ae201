import type { JobRef } from "../api/dispatch-request.js";
import type { Platform } from "../api/runner-view.js";
import type { RunnerOutcome, RunnerState } from "../api/states.js";
import type { Scope } from "../forgejo/scope.js";

export { RUNNER_STATES, TERMINAL_STATES } from "../api/states.js";
export type { RunnerOutcome, RunnerState } from "../api/states.js";
export type { JobRef } from "../api/dispatch-request.js";
export type { Platform } from "../api/runner-view.js";

export interface Transition {
  at: string;
  from: RunnerState | null;
  to: RunnerState;
  reason: string;
}

export interface RunnerRecord {
  name: string;
  dispatchId: string;
  state: RunnerState;
  /** Why it is in this state, in words an operator understands. */
  reason: string;
  platform: Platform;
  labels: string[];
  scope: Scope;
  machineType: string;
  image: string;
  ttlMs: number;
  /**
   * The request's extra environment. Stored so a runner accepted before a restart launches with it;
   * never returned by the status API (values may be secrets): views show the keys only.
   */
  env: Record<string, string>;
  job?: JobRef | undefined;
  instanceId?: string | undefined;
  forgejoRunnerId?: number | undefined;
  /** "ephemeral" or "token": how the runner got its credentials. */
  registration?: "ephemeral" | "token" | undefined;
  launchAttempts: number;
  createdAt: string;
  updatedAt: string;
  launchedAt?: string | undefined;
  finishedAt?: string | undefined;
  /** The hard cap: instance deadline (launch time + TTL). */
  expiresAt?: string | undefined;
  /** Pending runners not launched by then fail. */
  queueDeadline: string;
  /**
   * Where the runner is headed, set as it enters `finishing` (a finish interrupted by a crash ends
   * the same way) and kept once it has ended. Unset before.
   */
  outcome?: RunnerOutcome | undefined;
  history: Transition[];
}

/** A runner without its transition history: what listings that do not show it need (less memory). */
export type RunnerFields = Omit<RunnerRecord, "history">;

export interface DispatchRecord {
  id: string;
  idempotencyKey?: string | undefined;
  /** sha256 of the canonical request, to tell a retry from a conflicting reuse of a key. */
  requestHash: string;
  /** The validated request with env values replaced by "[redacted]" (the runners hold the values). */
  request: unknown;
  runnerNames: string[];
  createdAt: string;
}

export interface RunnerFilter {
  states?: readonly RunnerState[];
  labels?: readonly string[];
  scopeKey?: string;
  jobId?: number;
  dispatchId?: string;
  limit?: number;
}

/** Fields that may change along with a state change, or on their own. */
export type RunnerPatch = Partial<
  Pick<
    RunnerRecord,
    "instanceId" | "forgejoRunnerId" | "registration" | "launchAttempts" | "launchedAt" | "finishedAt" | "expiresAt" | "reason" | "outcome"
  >
>;

export interface CreateDispatchOptions {
  /**
   * Refuse the dispatch (QueueFullError, ./errors.ts) when the runners pending now plus its pending
   * runners would exceed this. Checked in the same transaction as the insert, so concurrent
   * dispatches, from this process or another replica, never overshoot it. A key seen before still
   * answers with its dispatch however full the queue is.
   */
  maxPending?: number | undefined;
}

export type CreateDispatchResult =
  | { created: true; dispatch: DispatchRecord; runners: RunnerRecord[] }
  | { created: false; dispatch: DispatchRecord; runners: RunnerRecord[] };

/**
 * Durable records. Every method is atomic. SQL dialect details stay inside implementations so a
 * PostgreSQL store can follow (several dispatcher replicas). When the database cannot be used for
 * now (locked, disk full, read-only) a method rejects with StateUnavailableError (./errors.ts),
 * which API routes turn into 503 and the dispatcher's own writes wait out (Records.durably).
 */
export interface Store {
  /**
   * Records a dispatch and its runners in one transaction. When the idempotency key already exists,
   * records nothing and returns the existing dispatch (the caller compares requestHash).
   */
  createDispatch(dispatch: DispatchRecord, runners: RunnerRecord[], options?: CreateDispatchOptions): Promise<CreateDispatchResult>;
  getDispatch(id: string): Promise<DispatchRecord | undefined>;
  getDispatchByKey(key: string): Promise<DispatchRecord | undefined>;
  getRunner(name: string): Promise<RunnerRecord | undefined>;
  listRunners(filter?: RunnerFilter): Promise<RunnerRecord[]>;
  /** As listRunners, without reading the histories: for listings that do not show them. */
  listRunnersWithoutHistory(filter?: RunnerFilter): Promise<RunnerFields[]>;
  countRunners(states: readonly RunnerState[]): Promise<number>;
  /**
   * Compare-and-set state change: applies only when the runner is in one of `from`; appends to the
   * history. Returns the updated record, or undefined when the runner was not in an expected state.
   */
  transition(
    name: string,
    from: readonly RunnerState[],
    to: RunnerState,
    reason: string,
    patch?: RunnerPatch,
    at?: Date,
  ): Promise<RunnerRecord | undefined>;
  /** Updates fields without a state change. */
  update(name: string, patch: RunnerPatch, at?: Date): Promise<RunnerRecord | undefined>;
  /** Deletes terminal runners finished before `before`, and dispatches left without runners. */
  pruneFinished(before: Date): Promise<number>;
  /**
   * Why records cannot be written right now, in words that say what to do, or undefined when they
   * can (for /readyz). Cheap while writes succeed; after a failed write, or when none happened for
   * a while, it makes a write that changes nothing to find out.
   */
  writeProblem(): Promise<string | undefined>;
  /**
   * The same records, whose writes (createDispatch, transition, update, pruneFinished) succeed only
   * while `fence` holds its lease: on PostgreSQL the lease row must name fence.holder with
   * fence.epoch() and not have expired by the database's clock, checked in the write's own
   * transaction right before it commits; otherwise nothing is written and the write rejects with
   * NotLeaderError (src/ha/gate.ts). Reads, writeProblem and close are the store's own. A store
   * that only one process can use (SQLite) returns itself: its single lease is always held.
   */
  fenced(fence: WriteFence): Store;
  close(): Promise<void>;
}

/**
 * The lease that fences a replica's writes (Store.fenced): src/ha/lease.ts's Lease is one. Its row
 * is `name` in the `leases` table of the store's schema (src/ha/pg-lease.ts).
 */
export interface WriteFence {
  readonly name: string;
  /** This replica's identity in the lease table. */
  readonly holder: string;
  /** The epoch of the holding this replica believes in force, or undefined when it holds none now (refused without asking). */
  epoch(): number | undefined;
}
