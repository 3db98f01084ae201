import { errorMessage } from "../../shared/error-message.js";
import { STATE_RETRIES, StateUnavailableError } from "../errors.js";
import { redactUrl } from "./postgres-config.js";

/** Node's errors for a server that cannot be reached (yet): worth waiting for. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "EAI_AGAIN",
  "ECONNABORTED",
]);

/** node-postgres reports lost or never-made connections as plain Errors with these messages. */
const CONNECTION_MESSAGES = [
  /^Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
  /^Connection ended/i,
];

/** A transaction that lost a race with another one: run it again. */
export function isRetryableConflict(err: unknown): boolean {
  const code = sqlState(err);
  return code === "40001" || code === "40P01";
}

export function sqlState(err: unknown): string | undefined {
  const code: unknown = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** What to do about a failure that is about the server, or undefined for a statement's own error (constraints, SQL, bugs). */
function advice(code: string | undefined, message: string): string | undefined {
  if (code !== undefined && NETWORK_CODES.has(code))
    return `cannot connect (${code}); start the server or check dispatcher.store's host and port and the network`;
  if (code === undefined || !/^[0-9A-Z]{5}$/.test(code)) {
    return CONNECTION_MESSAGES.some((m) => m.test(message))
      ? `lost or could not open a connection (${message}); check that the server is up and reachable`
      : undefined;
  }
  if (code.startsWith("08")) return `connection failure (${code}: ${message}); check that the server is up and reachable`;
  if (code === "57P01" || code === "57P02" || code === "57P03") return `the server is shutting down or starting up (${code}: ${message})`;
  if (code === "57014")
    return `a statement was cancelled (${code}: ${message}); the server is overloaded or a lock is held too long (dispatcher.postgres.statement_timeout)`;
  if (code === "53300")
    return `the server has no connection slots left (${code}); raise max_connections or lower dispatcher.postgres.pool_size across replicas`;
  if (code.startsWith("53")) return `the server is out of resources (${code}: ${message}); free disk or memory on the database server`;
  if (code === "25006") return `the server is read-only (${code}: ${message}); dispatcher.store must name the primary, not a standby`;
  if (code.startsWith("28"))
    return `the server refused the login (${code}: ${message}); check the user and password in dispatcher.store and pg_hba.conf`;
  if (code === "3D000") return `the database does not exist (${code}: ${message}); create it or fix the database name in dispatcher.store`;
  if (code === "55P03") return `a lock could not be taken (${code}: ${message})`;
  return undefined;
}

/**
 * The StateUnavailableError for a PostgreSQL failure that is about the server or the connection
 * (down, unreachable, restarting, read-only, out of slots, a statement timed out); undefined for
 * errors of the statement itself, which stay what they are. `display` is the URL without password;
 * the server's own message never carries it, and any URL in it is redacted all the same.
 */
export function postgresUnavailable(err: unknown, display: string): StateUnavailableError | undefined {
  const message = errorMessage(err);
  const what = advice(sqlState(err), message);
  if (what === undefined) return undefined;
  return new StateUnavailableError(redactUrl(`state database ${display}: ${what}; ${STATE_RETRIES}`), { cause: err });
}
