import type { Logger } from "../http/logger.js";
import { StateDatabaseError, openSqliteStore } from "./sqlite-store.js";
import type { Store } from "./types.js";

export interface OpenStoreOptions {
  logger?: Logger | undefined;
}

/**
 * Opens the Store that `dispatcher.state_path` names. A file path (or ":memory:", for demos) is a
 * SQLite database; URLs are reserved for server databases that later releases may add.
 */
export async function openStore(statePath: string, options: OpenStoreOptions = {}): Promise<Store> {
  if (/^postgres(ql)?:\/\//i.test(statePath)) {
    throw new StateDatabaseError(
      "dispatcher.state_path is a PostgreSQL URL, but this release only stores state in SQLite; set it to a file path such as /var/lib/forgejo-nsc/dispatcher.db",
    );
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(statePath)) {
    throw new StateDatabaseError(
      `dispatcher.state_path "${statePath.replace(/\/\/[^@/]*@/, "//…@")}" is a URL; set it to a file path such as /var/lib/forgejo-nsc/dispatcher.db`,
    );
  }
  return openSqliteStore(statePath.startsWith("sqlite:") ? statePath.slice("sqlite:".length) : statePath, { logger: options.logger });
}
