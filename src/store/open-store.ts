import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import type { Logger } from "../http/logger.js";
import { StateDatabaseError } from "./errors.js";
import { isPostgresUrl, redactUrl } from "./postgres/postgres-config.js";
import type { PostgresOptions } from "./postgres/postgres-config.js";
import { openPostgresStore } from "./postgres/postgres-store.js";
import { openSqliteStore } from "./sqlite-store.js";
import type { Store } from "./types.js";

export interface OpenStoreOptions {
  logger?: Logger | undefined;
  /** Pool, timeouts, schema and TLS when `where` is a PostgreSQL URL. */
  postgres?: PostgresOptions | undefined;
}

/** The part of the dispatcher's config that says where its records are. */
export type StoreSelection = Pick<DispatcherConfig["dispatcher"], "state_path" | "store" | "postgres">;

/** dispatcher.postgres as the store's options. */
export function postgresOptions(c: StoreSelection["postgres"]): PostgresOptions {
  return {
    poolSize: c.pool_size,
    statementTimeoutMs: c.statement_timeout,
    connectTimeoutMs: c.connect_timeout,
    schema: c.schema,
    tls: c.tls && { caFile: c.tls.ca_file, rejectUnauthorized: c.tls.reject_unauthorized },
  };
}

/**
 * Opens the Store the dispatcher's config names: dispatcher.store (a postgres:// URL) when set,
 * else the SQLite file dispatcher.state_path (the default). Or, given a string: a postgres:// URL
 * is PostgreSQL; a file path, `sqlite:PATH` or ":memory:" (demos, tests) is SQLite.
 */
export async function openStore(where: string | StoreSelection, options: OpenStoreOptions = {}): Promise<Store> {
  if (typeof where !== "string") {
    if (where.store === undefined) return openStore(where.state_path, options);
    return openPostgresStore(where.store, { ...postgresOptions(where.postgres), logger: options.logger });
  }
  if (isPostgresUrl(where)) return openPostgresStore(where, { ...options.postgres, logger: options.logger });
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(where)) {
    throw new StateDatabaseError(
      `dispatcher.state_path "${redactUrl(where)}" is a URL; set it to a file path such as /var/lib/forgejo-nsc/dispatcher.db (PostgreSQL: a postgres:// URL in dispatcher.store)`,
    );
  }
  return openSqliteStore(where.startsWith("sqlite:") ? where.slice("sqlite:".length) : where, { logger: options.logger });
}
