import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { upstreamProgram } from "../../scripts/upstream/manifest.js";
import { startProcess } from "../e2e/processes.js";
import type { TestProcess } from "../e2e/processes.js";
import { jsonOr } from "../helpers/fetch-json.js";
import { freePort } from "../helpers/free-port.js";
import { recordSecrets } from "../helpers/secrets.js";
import { waitFor } from "../helpers/wait.js";

export const GITEA_ADMIN = "root";
/** The admin's password: only used to mint the PAT over basic auth. */
export const GITEA_ADMIN_PASSWORD = "upstream-e2e-admin-Passw0rd-7f2c";

export interface GiteaServer {
  url: string;
  version: string;
  /** A PAT of the admin with write:admin, write:repository, write:organization, write:user. */
  token: string;
  process: TestProcess;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }>;
  stop(): Promise<void>;
}

/**
 * A real Gitea (built by scripts/upstream/build.ts) on loopback: a temp work dir, an app.ini
 * written here (Actions on, install lock, SQLite, webhooks allowed to loopback), the admin created
 * with Gitea's own CLI and a PAT minted through the API.
 */
export async function startGitea(version: string, dir: string): Promise<GiteaServer> {
  const { bin, src } = upstreamProgram("gitea", version);
  if (!src) throw new Error(`gitea ${version} was built without its source tree (options/ and templates/ are read from it)`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  mkdirSync(dir, { recursive: true });
  const ini = join(dir, "app.ini");
  writeFileSync(
    ini,
    [
      // CI runs as root; Gitea refuses that unless told the operator knows.
      "I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true",
      "APP_NAME = forgejo-nsc upstream e2e",
      "RUN_MODE = prod",
      `WORK_PATH = ${dir}`,
      "[server]",
      "HTTP_ADDR = 127.0.0.1",
      `HTTP_PORT = ${port}`,
      `ROOT_URL = ${url}/`,
      "DISABLE_SSH = true",
      "OFFLINE_MODE = true",
      "LFS_START_SERVER = false",
      `APP_DATA_PATH = ${join(dir, "data")}`,
      // Built without bindata: locales and templates come from the module's source tree.
      `STATIC_ROOT_PATH = ${src}`,
      "[database]",
      "DB_TYPE = sqlite3",
      `PATH = ${join(dir, "gitea.db")}`,
      "[security]",
      "INSTALL_LOCK = true",
      `SECRET_KEY = ${"k".repeat(32)}`,
      "[oauth2]",
      "ENABLED = false",
      "[actions]",
      "ENABLED = true",
      "[webhook]",
      "ALLOWED_HOST_LIST = loopback",
      "DELIVER_TIMEOUT = 10",
      "[repository]",
      `ROOT = ${join(dir, "repos")}`,
      "[log]",
      "MODE = console",
      "LEVEL = Warn",
      `ROOT_PATH = ${join(dir, "log")}`,
      "[service]",
      "DISABLE_REGISTRATION = true",
      "[mailer]",
      "ENABLED = false",
      "[cron.update_checker]",
      "ENABLED = false",
      "",
    ].join("\n"),
  );
  const cli = (args: string[]) =>
    execFileSync(bin, ["--config", ini, "--work-path", dir, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  cli(["migrate"]);
  cli([
    "admin",
    "user",
    "create",
    "--admin",
    "--username",
    GITEA_ADMIN,
    "--password",
    GITEA_ADMIN_PASSWORD,
    "--email",
    "root@example.com",
    "--must-change-password=false",
  ]);
  const proc = startProcess(`gitea-${version}`, bin, ["--config", ini, "--work-path", dir, "web"], {
    cwd: dir,
    env: { ...process.env, HOME: dir },
  });
  await waitFor(async () => (await fetch(`${url}/api/v1/version`).catch(() => undefined))?.ok, {
    what: `gitea ${version} to answer`,
    timeoutMs: 60_000,
    intervalMs: 200,
  });

  const basic = `Basic ${Buffer.from(`${GITEA_ADMIN}:${GITEA_ADMIN_PASSWORD}`).toString("base64")}`;
  const minted = await fetch(`${url}/api/v1/users/${GITEA_ADMIN}/tokens`, {
    method: "POST",
    headers: { authorization: basic, "content-type": "application/json" },
    body: JSON.stringify({ name: "forgejo-nsc-e2e", scopes: ["write:admin", "write:repository", "write:organization", "write:user"] }),
  });
  if (minted.status !== 201) throw new Error(`minting a PAT on gitea ${version} answered ${minted.status}: ${await minted.text()}`);
  const token = ((await minted.json()) as { sha1: string }).sha1;
  recordSecrets([token, GITEA_ADMIN_PASSWORD]);

  const api: GiteaServer["api"] = async (method, path, body) => {
    const res = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: { authorization: `token ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: jsonOr(text, undefined), text };
  };
  const reported = (await api("GET", "/version")).json as { version: string };
  return { url, version: reported.version, token, process: proc, api, stop: async () => void (await proc.stop(10_000)) };
}
