import { scopeKey } from "../forgejo/scope.js";
import type { Scope } from "../forgejo/scope.js";
import { QueueFullError } from "./errors.js";
import { RUNNER_STATES, TERMINAL_STATES } from "./types.js";
import type {
  DispatchRecord,
  Platform,
  RunnerFields,
  RunnerFilter,
  RunnerOutcome,
  RunnerPatch,
  RunnerRecord,
  RunnerState,
  Transition,
} from "./types.js";

/**
 * The rows of the state database as both stores write them (SQLite and PostgreSQL hold the same
 * columns, so migrate-store copies row by row), and the conversions between rows and records.
 */

export interface DispatchRow {
  id: string;
  idempotency_key: string | null;
  request_hash: string;
  request: string;
  created_at: string;
}

export interface RunnerRow {
  name: string;
  dispatch_id: string;
  dispatch_index: number;
  state: string;
  reason: string;
  platform: string;
  labels: string;
  scope: string;
  scope_key: string;
  machine_type: string;
  image: string;
  ttl_ms: number;
  env: string;
  job_id: number | null;
  job_attempt: number | null;
  job_handle: string | null;
  instance_id: string | null;
  forgejo_runner_id: number | null;
  registration: string | null;
  launch_attempts: number;
  created_at: string;
  updated_at: string;
  launched_at: string | null;
  finished_at: string | null;
  expires_at: string | null;
  queue_deadline: string;
  outcome: string | null;
}

export interface TransitionRow {
  runner: string;
  at: string;
  from_state: string | null;
  to_state: string;
  reason: string;
}

export type SqlValue = string | number | null;

export const PATCH_COLUMNS = {
  instanceId: "instance_id",
  forgejoRunnerId: "forgejo_runner_id",
  registration: "registration",
  launchAttempts: "launch_attempts",
  launchedAt: "launched_at",
  finishedAt: "finished_at",
  expiresAt: "expires_at",
  reason: "reason",
  outcome: "outcome",
} as const satisfies Record<keyof RunnerPatch, string>;

export const TIMESTAMP_PATCH_KEYS = new Set<keyof RunnerPatch>(["launchedAt", "finishedAt", "expiresAt"]);

export const RUNNER_COLUMNS = [
  "name",
  "dispatch_id",
  "dispatch_index",
  "state",
  "reason",
  "platform",
  "labels",
  "scope",
  "scope_key",
  "machine_type",
  "image",
  "ttl_ms",
  "env",
  "job_id",
  "job_attempt",
  "job_handle",
  "instance_id",
  "forgejo_runner_id",
  "registration",
  "launch_attempts",
  "created_at",
  "updated_at",
  "launched_at",
  "finished_at",
  "expires_at",
  "queue_deadline",
  "outcome",
] as const;

/** Canonical ISO-8601 UTC, so stored timestamps sort and compare correctly as text. */
export function isoTimestamp(value: string | Date, what: string): string {
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) throw new TypeError(`${what}: ${JSON.stringify(String(value))} is not a valid timestamp`);
  return d.toISOString();
}

export function checkState(state: string, what: string): RunnerState {
  if (!(RUNNER_STATES as readonly string[]).includes(state)) {
    throw new TypeError(`${what}: "${state}" is not a runner state (expected one of ${RUNNER_STATES.join(", ")})`);
  }
  return state as RunnerState;
}

export function rowToDispatch(row: DispatchRow, runnerNames: string[]): DispatchRecord {
  const d: DispatchRecord = {
    id: row.id,
    requestHash: row.request_hash,
    request: JSON.parse(row.request) as unknown,
    runnerNames,
    createdAt: row.created_at,
  };
  if (row.idempotency_key !== null) d.idempotencyKey = row.idempotency_key;
  return d;
}

export function rowToRunner(row: RunnerRow, history: Transition[]): RunnerRecord {
  return { ...rowToRunnerFields(row), history };
}

/** A runner without its history (listings that do not need it). */
export function rowToRunnerFields(row: RunnerRow): RunnerFields {
  const r: RunnerFields = {
    name: row.name,
    dispatchId: row.dispatch_id,
    state: row.state as RunnerState,
    reason: row.reason,
    platform: row.platform as Platform,
    labels: JSON.parse(row.labels) as string[],
    scope: JSON.parse(row.scope) as Scope,
    machineType: row.machine_type,
    image: row.image,
    ttlMs: row.ttl_ms,
    env: JSON.parse(row.env) as Record<string, string>,
    launchAttempts: row.launch_attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    queueDeadline: row.queue_deadline,
  };
  if (row.job_id !== null) {
    r.job = { id: row.job_id };
    if (row.job_attempt !== null) r.job.attempt = row.job_attempt;
    if (row.job_handle !== null) r.job.handle = row.job_handle;
  }
  if (row.instance_id !== null) r.instanceId = row.instance_id;
  if (row.forgejo_runner_id !== null) r.forgejoRunnerId = row.forgejo_runner_id;
  if (row.registration !== null) r.registration = row.registration as "ephemeral" | "token";
  if (row.launched_at !== null) r.launchedAt = row.launched_at;
  if (row.finished_at !== null) r.finishedAt = row.finished_at;
  if (row.expires_at !== null) r.expiresAt = row.expires_at;
  if (row.outcome !== null) r.outcome = row.outcome as RunnerOutcome;
  return r;
}

export function runnerToRow(r: RunnerRecord, index: number): RunnerRow {
  const what = `runner ${r.name}`;
  const state = checkState(r.state, `${what} state`);
  const terminal = TERMINAL_STATES.includes(state);
  return {
    name: r.name,
    dispatch_id: r.dispatchId,
    dispatch_index: index,
    state,
    reason: r.reason,
    platform: r.platform,
    labels: JSON.stringify(r.labels),
    scope: JSON.stringify(r.scope),
    scope_key: scopeKey(r.scope),
    machine_type: r.machineType,
    image: r.image,
    ttl_ms: r.ttlMs,
    env: JSON.stringify(r.env),
    job_id: r.job?.id ?? null,
    job_attempt: r.job?.attempt ?? null,
    job_handle: r.job?.handle ?? null,
    instance_id: r.instanceId ?? null,
    forgejo_runner_id: r.forgejoRunnerId ?? null,
    registration: r.registration ?? null,
    launch_attempts: r.launchAttempts,
    created_at: isoTimestamp(r.createdAt, `${what} createdAt`),
    updated_at: isoTimestamp(r.updatedAt, `${what} updatedAt`),
    launched_at: r.launchedAt ? isoTimestamp(r.launchedAt, `${what} launchedAt`) : null,
    // A terminal runner always has a finish time, so pruneFinished can age it out.
    finished_at: r.finishedAt
      ? isoTimestamp(r.finishedAt, `${what} finishedAt`)
      : terminal
        ? isoTimestamp(r.updatedAt, `${what} updatedAt`)
        : null,
    expires_at: r.expiresAt ? isoTimestamp(r.expiresAt, `${what} expiresAt`) : null,
    queue_deadline: isoTimestamp(r.queueDeadline, `${what} queueDeadline`),
    outcome: r.outcome ?? null,
  };
}

/**
 * The columns a patch sets and their values, in PATCH_COLUMNS order; undefined values leave the
 * column as it is. Each store writes the placeholders of its dialect.
 */
export function patchColumns(patch: RunnerPatch, skipReason: boolean): { columns: string[]; values: SqlValue[] } {
  const columns: string[] = [];
  const values: SqlValue[] = [];
  for (const key of Object.keys(PATCH_COLUMNS) as (keyof RunnerPatch)[]) {
    const value = patch[key];
    if (value === undefined || (skipReason && key === "reason")) continue;
    columns.push(PATCH_COLUMNS[key]);
    values.push(TIMESTAMP_PATCH_KEYS.has(key) ? isoTimestamp(value as string, `patch ${key}`) : (value as string | number));
  }
  return { columns, values };
}

/**
 * The UPDATE of a plain patch (update()) as both stores write it: the patch's columns and
 * updated_at, with their values numbered from 1 by `placeholder`; the store adds WHERE name.
 */
export function patchUpdate(patch: RunnerPatch, at: Date, placeholder: SqlDialect["placeholder"]): { set: string; values: SqlValue[] } {
  const { columns, values } = patchColumns(patch, false);
  values.push(isoTimestamp(at, "update at"));
  const set = [...columns, "updated_at"].map((c, i) => `${c} = ${placeholder(i + 1)}`).join(", ");
  return { set, values };
}

/**
 * The UPDATE of a transition as both stores write it, checked first (states, timestamp): the SET
 * list (the patch's columns, a terminal runner's finish time, then state, reason and updated_at) and
 * its values, numbered from 1 by `placeholder`. The store adds its WHERE (name, and what it checks
 * the state with) after these values.
 */
export function transitionUpdate(
  from: readonly RunnerState[],
  to: RunnerState,
  reason: string,
  patch: RunnerPatch,
  at: Date,
  placeholder: SqlDialect["placeholder"],
): { when: string; set: string; values: SqlValue[] } {
  for (const s of from) checkState(s, "transition from");
  checkState(to, "transition to");
  const when = isoTimestamp(at, "transition at");
  const { columns, values } = patchColumns(patch, true);
  const sets = columns.map((c, i) => `${c} = ${placeholder(i + 1)}`);
  if (TERMINAL_STATES.includes(to) && patch.finishedAt === undefined) {
    // A terminal runner always has a finish time, so pruneFinished can age it out.
    sets.push(`finished_at = COALESCE(finished_at, ${placeholder(values.push(when))})`);
  }
  sets.push(`state = ${placeholder(values.push(to))}`);
  sets.push(`reason = ${placeholder(values.push(reason))}`);
  sets.push(`updated_at = ${placeholder(values.push(when))}`);
  return { when, set: sets.join(", "), values };
}

/** Transitions grouped by runner, each list oldest first when the rows come ordered by runner, seq. */
export function historiesByRunner(transitions: readonly TransitionRow[]): Map<string, Transition[]> {
  const byRunner = new Map<string, Transition[]>();
  for (const t of transitions) {
    let list = byRunner.get(t.runner);
    if (!list) byRunner.set(t.runner, (list = []));
    list.push({ at: t.at, from: t.from_state as RunnerState | null, to: t.to_state as RunnerState, reason: t.reason });
  }
  return byRunner;
}

/** How a store's SQL says the parts of a runner listing that differ between databases. */
export interface SqlDialect {
  /** The placeholder of the n-th parameter (1-based). */
  placeholder(n: number): string;
  /** `column` is one of the strings in the JSON array parameter `ph`. */
  inJsonList(column: string, ph: string): string;
  /** The runner's labels include every label of the JSON array parameter `ph`. */
  hasAllLabels(ph: string): string;
}

/** The WHERE, ORDER BY and LIMIT of a runner listing (oldest first, then by name), with its parameters. */
export function runnerListClauses(
  filter: RunnerFilter,
  dialect: SqlDialect,
  what = "listRunners",
): { clauses: string; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const param = (value: SqlValue) => dialect.placeholder(params.push(value));
  if (filter.states !== undefined) {
    for (const s of filter.states) checkState(s, `${what} states`);
    where.push(dialect.inJsonList("state", param(JSON.stringify(filter.states))));
  }
  if (filter.labels !== undefined && filter.labels.length > 0) where.push(dialect.hasAllLabels(param(JSON.stringify(filter.labels))));
  if (filter.scopeKey !== undefined) where.push(`scope_key = ${param(filter.scopeKey)}`);
  if (filter.jobId !== undefined) where.push(`job_id = ${param(filter.jobId)}`);
  if (filter.dispatchId !== undefined) where.push(`dispatch_id = ${param(filter.dispatchId)}`);
  let limit = "";
  if (filter.limit !== undefined) {
    if (!Number.isInteger(filter.limit) || filter.limit < 0)
      throw new TypeError(`${what} limit: ${filter.limit} is not a non-negative integer`);
    limit = ` LIMIT ${param(filter.limit)}`;
  }
  return { clauses: `${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at, name${limit}`, params };
}

/** A dispatch's runners as rows, in the order given; each must name the dispatch. */
export function runnerRowsOf(dispatch: DispatchRecord, runners: readonly RunnerRecord[]): RunnerRow[] {
  return runners.map((r, i) => {
    if (r.dispatchId !== dispatch.id) {
      throw new TypeError(`runner ${r.name} names dispatch ${r.dispatchId} but is recorded with dispatch ${dispatch.id}`);
    }
    return runnerToRow(r, i);
  });
}

/** Throws QueueFullError when `pendingNow` plus the rows' pending runners would exceed `maxPending`. */
export function checkQueue(pendingNow: number, rows: readonly RunnerRow[], maxPending: number | undefined): void {
  if (maxPending === undefined) return;
  const adding = rows.filter((r) => r.state === "pending").length;
  if (adding > 0 && pendingNow + adding > maxPending) throw new QueueFullError(pendingNow, maxPending);
}
