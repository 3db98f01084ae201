import { escapeLiteral } from "pg";
import type { SqlDialect } from "../rows.js";
import { RUNNER_COLUMNS } from "../rows.js";
import { TERMINAL_STATES } from "../types.js";

/**
 * The PostgreSQL store's SQL. Reads select exactly the SQLite row shape (src/store/rows.ts):
 * labels as JSON text, BIGINTs as numbers, so both stores share the row conversions.
 */

export const PG_DIALECT: SqlDialect = {
  placeholder: (n) => `$${n}`,
  inJsonList: (column, ph) => `${column} IN (SELECT jsonb_array_elements_text(${ph}::jsonb))`,
  hasAllLabels: (ph) => `labels @> ${ph}::jsonb`,
};

const NUMERIC = new Set(["ttl_ms", "job_id", "job_attempt", "forgejo_runner_id"]);

/** Every runner column, as the SQLite store reads it. */
const RUNNER_FIELDS = RUNNER_COLUMNS.map((c) =>
  c === "labels" ? "labels::text AS labels" : NUMERIC.has(c) ? `${c}::float8 AS ${c}` : c,
).join(", ");

const HISTORY = `COALESCE((
    SELECT json_agg(json_build_object('at', t.at, 'from', t.from_state, 'to', t.to_state, 'reason', t.reason) ORDER BY t.seq)
    FROM runner_transitions t WHERE t.runner = runners.name), '[]'::json) AS history`;

/** Runners with their histories, in one statement (one snapshot); append a WHERE/ORDER clause. */
export const SELECT_RUNNERS = `SELECT ${RUNNER_FIELDS}, ${HISTORY} FROM runners`;
export const SELECT_RUNNER_FIELDS = `SELECT ${RUNNER_FIELDS} FROM runners`;

/** Dispatches with their runner names in order; append a WHERE clause. */
export const SELECT_DISPATCHES = `SELECT d.id, d.idempotency_key, d.request_hash, d.request, d.created_at,
    ARRAY(SELECT r.name FROM runners r WHERE r.dispatch_id = d.id ORDER BY r.dispatch_index, r.name) AS runner_names
  FROM dispatches d`;

/** As SELECT_DISPATCHES, with the runners themselves (rows as JSON, histories included) in one snapshot. */
export const SELECT_DISPATCHES_WITH_RUNNERS = `SELECT d.id, d.idempotency_key, d.request_hash, d.request, d.created_at,
    COALESCE((SELECT json_agg(r ORDER BY r.dispatch_index, r.name) FROM (${SELECT_RUNNERS} WHERE dispatch_id = d.id) r), '[]'::json) AS runners
  FROM dispatches d`;

/**
 * Records the dispatch unless its key is taken; no row back means taken. A second insert of the
 * same key waits for the first one's transaction and then does nothing: concurrent retries queue
 * behind one transaction, not behind each other.
 */
export const INSERT_DISPATCH = `INSERT INTO dispatches (id, idempotency_key, request_hash, request, created_at) VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`;

/** One INSERT for `count` runners (a dispatch has at most a few dozen; far below the 65535 parameters). */
export function insertRunners(count: number): string {
  const width = RUNNER_COLUMNS.length;
  const row = (r: number) => `(${RUNNER_COLUMNS.map((c, i) => `$${r * width + i + 1}${c === "labels" ? "::jsonb" : ""}`).join(", ")})`;
  return `INSERT INTO runners (${RUNNER_COLUMNS.join(", ")}) VALUES ${Array.from({ length: count }, (_, r) => row(r)).join(", ")}`;
}

/** The first transitions of `count` new runners: (runner, at, to_state, reason) each. */
export function insertFirstTransitions(count: number): string {
  const row = (r: number) => `($${r * 4 + 1}, 1, $${r * 4 + 2}, NULL, $${r * 4 + 3}, $${r * 4 + 4})`;
  return `INSERT INTO runner_transitions (runner, seq, at, from_state, to_state, reason) VALUES ${Array.from({ length: count }, (_, r) => row(r)).join(", ")}`;
}

export const APPEND_TRANSITION = `INSERT INTO runner_transitions (runner, seq, at, from_state, to_state, reason)
  VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runner_transitions WHERE runner = $1), $2, $3, $4, $5)`;

export const COUNT_PENDING = "SELECT COUNT(*)::int AS n FROM runners WHERE state = 'pending'";

const DOOMED = `SELECT name FROM runners WHERE state IN (${TERMINAL_STATES.map((s) => `'${s}'`).join(", ")}) AND finished_at IS NOT NULL AND finished_at < $1`;
export const PRUNE = [
  // Explicit, though ON DELETE CASCADE would do it, to match the SQLite store step for step.
  `DELETE FROM runner_transitions WHERE runner IN (${DOOMED})`,
  `DELETE FROM runners WHERE name IN (${DOOMED})`,
  // Only dispatches older than the cutoff: one created with no runners at all still ages out.
  "DELETE FROM dispatches WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM runners WHERE runners.dispatch_id = dispatches.id)",
] as const;

/**
 * The advisory lock every createDispatch that records runners takes (one per schema), from
 * counting the queue to COMMIT: no two dispatches count the same free places.
 */
export const DISPATCH_LOCK = "SELECT pg_advisory_xact_lock(hashtext($1))";
export const dispatchLockKey = (schema: string) => `forgejo-nsc:dispatch:${schema}`;

/** A write that changes nothing, for writeProblem: fails like a real one on a read-only or unreachable server. */
export const PROBE_WRITE = "UPDATE schema_migrations SET name = name WHERE version = (SELECT MAX(version) FROM schema_migrations)";

/** The SQLSTATE of a write refused by its fence (fenceAndCommit): this replica's lease is not in force. */
export const FENCE_REFUSED = "FNL01";

/**
 * Checks the lease and commits, in one message: the lease row must name `holder` with `epoch` and
 * not have expired by the database's clock (clock_timestamp()), else the DO block raises
 * FENCE_REFUSED and the COMMIT after it never runs (the transaction is rolled back). FOR SHARE
 * holds the lease row from the check to the COMMIT, so no claim can change hands in between; as
 * both run in one message, no pause of this process can stretch that hold. Simple-query protocol
 * (no parameters, several statements): the values are quoted literals, twice (in the DO body, and
 * the body as a string), and the epoch is an integer.
 */
export function fenceAndCommit(name: string, holder: string, epoch: number): string {
  if (!Number.isSafeInteger(epoch)) throw new TypeError(`lease epoch ${epoch} is not an integer`);
  const body = `DECLARE l record;
BEGIN
  SELECT holder, epoch, expires_at > clock_timestamp() AS live INTO l FROM leases WHERE name = ${escapeLiteral(name)} FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '${FENCE_REFUSED}', MESSAGE = 'the lease table has no ' || ${escapeLiteral(name)} || ' lease';
  END IF;
  IF l.holder <> ${escapeLiteral(holder)} OR l.epoch <> ${epoch} OR NOT l.live THEN
    RAISE EXCEPTION USING ERRCODE = '${FENCE_REFUSED}',
      MESSAGE = format('the database''s lease is epoch %s of %s, %s', l.epoch, l.holder, CASE WHEN l.live THEN 'in force' ELSE 'expired' END);
  END IF;
END`;
  return `DO ${escapeLiteral(body)}; COMMIT`;
}
