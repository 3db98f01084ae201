import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import type { PoolConfig } from "pg";
import { StateDatabaseError } from "../errors.js";

/** How the dispatcher reaches PostgreSQL, besides the URL (dispatcher.postgres in the config). */
export interface PostgresOptions {
  /** Connections kept at most (default 10). Every replica has its own pool. */
  poolSize?: number | undefined;
  /** A statement running longer is cancelled; the call fails with StateUnavailableError (default 10 s). */
  statementTimeoutMs?: number | undefined;
  /** Waiting longer for a connection (TCP, TLS, authentication, or a free one in the pool) fails (default 5 s). */
  connectTimeoutMs?: number | undefined;
  /** The schema holding the tables (default public); created when missing. */
  schema?: string | undefined;
  tls?: { caFile?: string | undefined; rejectUnauthorized?: boolean | undefined } | undefined;
  /** The config keys that messages name (default: the dispatcher's dispatcher.store and dispatcher.postgres). */
  keys?: ConfigKeys | undefined;
}

/** Where in the config the URL and its options are, for messages. */
export interface ConfigKeys {
  url: string;
  options: string;
}

export const DISPATCHER_KEYS: ConfigKeys = { url: "dispatcher.store", options: "dispatcher.postgres" };

/** The connection settings, and the URL as it may be printed: without its password. */
export interface PostgresTarget {
  pool: PoolConfig;
  /** postgres://user@host:port/database, for messages and logs. */
  display: string;
  schema: string;
}

const SSL_MODES = ["disable", "require", "verify-ca", "verify-full"] as const;
type SslMode = (typeof SSL_MODES)[number];
/** Query parameters understood besides sslmode and sslrootcert; anything else is refused by name. */
const PASSED_PARAMS = new Set(["application_name", "host", "port", "user", "password", "dbname"]);
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export const DEFAULT_POOL_SIZE = 10;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 10_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

/**
 * The URL with any password replaced, for messages; also safe on text that is not a URL. Greedy up
 * to the last "@": a password with an unencoded "/", "?" or "@" is hidden all the same.
 */
export function redactUrl(value: string): string {
  return value.replace(/(\/\/[^:@/?#\s]*):\S*@/g, "$1:…@").replace(/([?&]password=)[^&#\s]*/gi, "$1…");
}

function fail(message: string): never {
  throw new StateDatabaseError(message);
}

function readCa(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    return fail(
      `cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? "error"}); point it at the PEM file of the CA that signed the server's certificate`,
    );
  }
}

/**
 * TLS as libpq would do it for this sslmode: disable → plain; require → encrypted, the certificate
 * not checked unless a CA is given (then as verify-ca); verify-ca → signed by the CA; verify-full →
 * signed and naming the host. Without sslmode, TLS is on (verify-full) only when tls options are set.
 * node-postgres cannot fall back from TLS to plain, so prefer and allow are refused.
 */
function tlsFor(
  mode: SslMode | undefined,
  ca: string | undefined,
  rejectUnauthorized: boolean | undefined,
  keys: ConfigKeys,
): false | ConnectionOptions {
  if (mode === "disable") {
    if (ca !== undefined || rejectUnauthorized !== undefined)
      fail(`${keys.url} says sslmode=disable but ${keys.options}.tls is set; remove one of them`);
    return false;
  }
  if (mode === undefined && ca === undefined && rejectUnauthorized === undefined) return false;
  const verify = mode === "require" ? ca !== undefined : true;
  const tls: ConnectionOptions = { rejectUnauthorized: rejectUnauthorized ?? verify };
  if (ca !== undefined) tls.ca = ca;
  if (mode === "verify-ca" || (mode === "require" && ca !== undefined)) tls.checkServerIdentity = () => undefined;
  return tls;
}

/**
 * libpq's URL with a user but no host (`postgres://user@/db?host=/run/postgresql`) is not a WHATWG
 * URL (credentials need a host) and `new URL` refuses it; it means the same as `postgres:///db`
 * with that user, which `new URL` reads with an empty host name.
 */
const USER_WITHOUT_HOST = /^(postgres(?:ql)?:\/\/)([^/?#@]*)@(?=[/?#]|$)/i;

function parseUrl(url: string, keys: ConfigKeys): { u: URL; hostname: string } {
  if (!isPostgresUrl(url))
    fail(
      keys === DISPATCHER_KEYS
        ? "dispatcher.store must be a postgres:// or postgresql:// URL (for SQLite set dispatcher.state_path instead)"
        : `${keys.url} must be a postgres:// or postgresql:// URL`,
    );
  try {
    if (!USER_WITHOUT_HOST.test(url)) {
      const u = new URL(url);
      return { u, hostname: u.hostname };
    }
    // Parsed with a placeholder host, which is then ignored: user and password stay percent-encoded as written.
    return { u: new URL(url.replace(USER_WITHOUT_HOST, "$1$2@placeholder.invalid")), hostname: "" };
  } catch {
    return fail(
      `${keys.url} is not a valid URL (${redactUrl(url)}); write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE, percent-encoding special characters in the password`,
    );
  }
}

function sslModeOf(params: URLSearchParams, keys: ConfigKeys): SslMode | undefined {
  const mode = params.get("sslmode") ?? undefined;
  if (mode === undefined || (SSL_MODES as readonly string[]).includes(mode)) return mode as SslMode | undefined;
  return fail(`${keys.url} has sslmode=${mode}, which node-postgres cannot do; use one of ${SSL_MODES.join(", ")}`);
}

/** Turns dispatcher.store (and dispatcher.postgres) into pool settings; StateDatabaseError names what is wrong, never the password. */
export function postgresTarget(url: string, options: PostgresOptions = {}): PostgresTarget {
  const keys = options.keys ?? DISPATCHER_KEYS;
  const { u, hostname } = parseUrl(url, keys);
  const params = u.searchParams;
  for (const key of params.keys()) {
    if (key !== "sslmode" && key !== "sslrootcert" && !PASSED_PARAMS.has(key)) {
      fail(
        `${keys.url} has the parameter ${key}, which forgejo-nsc does not use; remove it (TLS: sslmode and sslrootcert, or ${keys.options}.tls)`,
      );
    }
  }
  const schema = options.schema ?? "public";
  if (!SCHEMA_NAME.test(schema))
    fail(`${keys.options}.schema "${schema}" must be lower-case letters, digits and underscores, starting with a letter or underscore`);
  const caFile = options.tls?.caFile ?? params.get("sslrootcert") ?? undefined;
  const ca =
    caFile === undefined
      ? undefined
      : readCa(caFile, options.tls?.caFile !== undefined ? `${keys.options}.tls.ca_file` : `the sslrootcert of ${keys.url}`);
  const decode = (s: string) => (s === "" ? undefined : decodeURIComponent(s));
  const host = params.get("host") ?? (decode(hostname) || "localhost");
  const port = Number(params.get("port") ?? (u.port || 5432));
  const user = params.get("user") ?? decode(u.username);
  const database = params.get("dbname") ?? decode(u.pathname.replace(/^\//, ""));
  const pool: PoolConfig = {
    host,
    port,
    user,
    password: params.get("password") ?? decode(u.password),
    database,
    ssl: tlsFor(sslModeOf(params, keys), ca, options.tls?.rejectUnauthorized, keys),
    max: options.poolSize ?? DEFAULT_POOL_SIZE,
    statement_timeout: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    application_name: params.get("application_name") ?? "forgejo-nsc",
    options: `-c search_path=${schema}`,
  };
  const display = `postgres://${user ? `${user}@` : ""}${host.includes(":") ? `[${host}]` : host}:${port}/${database ?? ""}`;
  return { pool, display, schema };
}
