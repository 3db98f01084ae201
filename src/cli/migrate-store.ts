import { StateDatabaseError, StateUnavailableError } from "../store/errors.js";
import { SchemaTooNewError } from "../store/migrations.js";
import { isPostgresUrl, redactUrl } from "../store/postgres/postgres-config.js";
import { importSqliteIntoPostgres } from "../store/postgres/postgres-import.js";
import { noPositionals, parseFlags } from "./args.js";
import { CliError, UsageError, redact } from "./errors.js";
import type { CliIo } from "./io.js";
import { readSecretFile } from "./secret-input.js";

export const MIGRATE_STORE_USAGE = `Usage:
  forgejo-nsc migrate-store --from sqlite:<file> --to postgres://<user>:<password>@<host>/<db> [flags]
  forgejo-nsc migrate-store --from sqlite:<file> --to-file <file holding the URL> [flags]

Copies the dispatcher's records (dispatches, runners with their histories and outcomes) from its
SQLite file into PostgreSQL, in one transaction, row for row. Stop the dispatcher first; then set
dispatcher.store (or store_file) and start it on PostgreSQL. The target database must exist; its
tables are created. A target that already holds records is refused: nothing is merged or replaced.
Prints what it copied. Never prints the password.

Flags:
  --from sqlite:<file>        the SQLite state database (dispatcher.state_path); "sqlite:" is optional
  --to <url>                  the PostgreSQL URL (postgres:// or postgresql://, also postgres:<url>);
                              on a shared machine prefer --to-file: arguments are visible to others
  --to-file <file>            read the URL from this file (as dispatcher.store_file does)
  --schema <name>             the schema to fill (dispatcher.postgres.schema; default public)
  --ca-file <file>            CA of the server's certificate (dispatcher.postgres.tls.ca_file)
`;

const FLAGS = {
  from: { type: "string" },
  to: { type: "string" },
  "to-file": { type: "string" },
  schema: { type: "string" },
  "ca-file": { type: "string" },
} as const;

function sqlitePath(from: string | undefined): string {
  if (from === undefined) throw new UsageError("--from is required: the SQLite file, as sqlite:<path>", MIGRATE_STORE_USAGE);
  if (isPostgresUrl(from))
    throw new UsageError("--from names PostgreSQL; migrate-store copies from SQLite into PostgreSQL only", MIGRATE_STORE_USAGE);
  const path = from.startsWith("sqlite:") ? from.slice("sqlite:".length) : from;
  if (path === "" || /^[a-z][a-z0-9+.-]*:\/\//i.test(path))
    throw new UsageError("--from must be sqlite:<path of the SQLite file>", MIGRATE_STORE_USAGE);
  return path;
}

async function postgresUrl(to: string | undefined, toFile: string | undefined): Promise<string> {
  if ((to === undefined) === (toFile === undefined)) throw new UsageError("give exactly one of --to and --to-file", MIGRATE_STORE_USAGE);
  const raw = to ?? (await readSecretFile(toFile as string, "the PostgreSQL URL", "--to-file"));
  const url = !isPostgresUrl(raw) && raw.startsWith("postgres:") ? raw.slice("postgres:".length) : raw;
  if (!isPostgresUrl(url)) {
    const what = to !== undefined ? "--to" : `the URL in ${toFile}`;
    throw new UsageError(`${what} must be a postgres:// or postgresql:// URL (got ${redactUrl(url).slice(0, 12)}…)`, MIGRATE_STORE_USAGE);
  }
  return url;
}

function passwordOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return decodeURIComponent(u.password) || u.searchParams.get("password") || undefined;
  } catch {
    return undefined;
  }
}

/** `forgejo-nsc migrate-store`: SQLite → PostgreSQL. Exit 0 copied, 1 refused or failed, 2 usage. */
export async function migrateStoreCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, FLAGS, MIGRATE_STORE_USAGE);
  noPositionals(positionals, MIGRATE_STORE_USAGE);
  const from = sqlitePath(values.from);
  const url = await postgresUrl(values.to, values["to-file"]);
  const tls = values["ca-file"] === undefined ? undefined : { caFile: values["ca-file"] };
  try {
    const { counts, target, schema } = await importSqliteIntoPostgres(from, url, { schema: values.schema, tls });
    io.out(
      `copied ${counts.dispatches} dispatches, ${counts.runners} runners (${counts.live} not finished) and ${counts.transitions} transitions\n` +
        `  from sqlite:${from}\n  to   ${target} (schema ${schema})\n` +
        `next: set dispatcher.store (or store_file)${schema === "public" ? "" : ` and dispatcher.postgres.schema: ${schema}`}, remove dispatcher.state_path, start the dispatcher\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof StateDatabaseError || err instanceof StateUnavailableError || err instanceof SchemaTooNewError) {
      // The messages name the databases without the password; redacted again all the same.
      throw new CliError(redact(redactUrl(err.message), [passwordOf(url)]));
    }
    throw err;
  }
}
