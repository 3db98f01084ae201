import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";

/**
 * A PostgreSQL server of a test's own: `initdb` into a new temporary folder, `pg_ctl start` on a free
 * loopback port with trust authentication. A test that restarts or stops its database (the replica
 * chaos test) does it to this one, never to the machine's shared server that other test files use.
 * The binaries are PostgreSQL's own (Debian: /usr/lib/postgresql/<version>/bin; PG_BIN overrides).
 * As root (CI here), the server runs as the `postgres` user: PostgreSQL refuses to run as root.
 */
export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** The folder of its Unix socket (`.s.PGSQL.<port>`): `?host=<socketDir>&port=<port>` reaches it. */
  socketDir: string;
  /** `pg_ctl restart` (fast shutdown: every connection is cut, as when an operator restarts the server). */
  restart(): void;
  stop(): void;
}

export function postgresBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => join(root, v, "bin")).find((d) => existsSync(join(d, "initdb")));
  if (!found) throw new Error(`no PostgreSQL binaries under ${root}/<version>/bin: install PostgreSQL's server package or set PG_BIN`);
  return found;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "fnsc-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", join(bin, cmd), ...args]] : [join(bin, cmd), args];
    execFileSync(file, argv, { stdio: ["ignore", "ignore", "pipe"], timeout: 120_000 });
  };
  if (asRoot) {
    const ids = execFileSync("id", ["-u", "postgres"]).toString().trim();
    const gid = execFileSync("id", ["-g", "postgres"]).toString().trim();
    chownSync(dir, Number(ids), Number(gid));
  }
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const ctl = (action: string) =>
    run("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-o", options, "-w", "-t", "60", "-m", "fast", action]);
  ctl("start");
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    socketDir: dir,
    restart: () => ctl("restart"),
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        ctl("stop");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
