import { execFileSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { openStore } from "../../src/store/open-store.js";
import { postgresTarget } from "../../src/store/postgres/postgres-config.js";
import { deepMerge } from "../helpers/deep-merge.js";
import type { Tree } from "../helpers/deep-merge.js";
import { startPrivatePostgres } from "../helpers/private-postgres.js";
import type { PrivatePostgres } from "../helpers/private-postgres.js";
import { tempDir } from "../helpers/tmp.js";

/**
 * The Nix files, checked by Nix itself (Debian's nix-bin; scripts/ensure-nix.sh): each parses, and
 * nix/tests/static.nix evaluates the NixOS module and the flake against stubs of nixpkgs (its own
 * checks throw on a wrong value). The PostgreSQL URLs the module writes for
 * `services.forgejo-nsc.postgresql.createLocally` are then read by the daemons' own config code
 * and opened on a real PostgreSQL over its Unix socket, as the NixOS service would.
 */
const ROOT = join(import.meta.dirname, "..", "..");
const nixFiles = ["flake.nix", ...readdirSync(join(ROOT, "nix")).filter((f) => f.endsWith(".nix")).map((f) => `nix/${f}`), "nix/tests/static.nix"];

const nix = (args: string[]) => execFileSync("nix-instantiate", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** What nix/tests/static.nix evaluates to (its checks, and what the module writes), evaluated once for the file. */
let evaluated: { checks: boolean; storeUrls: { dispatcher: string; autoscaler: string }; settings: unknown } | undefined;
const staticNix = () => (evaluated ??= JSON.parse(nix(["--eval", "--strict", "--json", "nix/tests/static.nix"])) as NonNullable<typeof evaluated>);

describe("Nix files", () => {
  it.each(nixFiles)("%s parses", (file) => {
    expect(() => nix(["--parse", file])).not.toThrow();
  });

  it("nix/tests/static.nix: the lock file reader, the NixOS module and the flake pass their checks", () => {
    expect(staticNix().checks).toBe(true);
  });
});

describe("the NixOS module's local PostgreSQL URLs", () => {
  let server: PrivatePostgres;
  let urls: { dispatcher: string; autoscaler: string };
  beforeAll(async () => {
    urls = staticNix().storeUrls;
    server = await startPrivatePostgres();
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      // What services.postgresql's ensureUsers/ensureDatabases make: a role and its own database, per daemon.
      for (const name of ["forgejo-nsc-dispatcher", "forgejo-nsc-autoscaler"]) {
        await admin.query(`CREATE ROLE "${name}" LOGIN`);
        await admin.query(`CREATE DATABASE "${name}" OWNER "${name}"`);
      }
    } finally {
      await admin.end();
    }
  });
  afterAll(() => server?.stop());

  /** The module's URL, with its socket folder swapped for the test server's (and its port). */
  const onTestServer = (url: string) => url.replace("host=/run/postgresql", `host=${server.socketDir}&port=${server.port}`);

  it("are the socket URLs without a host that the docs describe", () => {
    expect(urls).toEqual({
      dispatcher: "postgres://forgejo-nsc-dispatcher@/forgejo-nsc-dispatcher?host=/run/postgresql",
      autoscaler: "postgres://forgejo-nsc-autoscaler@/forgejo-nsc-autoscaler?host=/run/postgresql",
    });
    expect(postgresTarget(urls.dispatcher).pool).toMatchObject({
      host: "/run/postgresql",
      user: "forgejo-nsc-dispatcher",
      database: "forgejo-nsc-dispatcher",
    });
  });

  it("the dispatcher's config accepts dispatcher.store and opens the store over the socket", async () => {
    const config = parseConfig(
      dispatcherConfigSchema,
      `forgejo: {base_url: "https://forgejo.example", token: t}\ndispatcher: {store: "${onTestServer(urls.dispatcher)}"}\n`,
      "dispatcher.yaml",
      {},
    );
    const store = await openStore(config.dispatcher);
    try {
      expect(await store.listRunners({})).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it("the autoscaler's config accepts replicas.store", () => {
    const config = parseConfig(
      autoscalerConfigSchema,
      [
        `dispatcher: {url: "http://127.0.0.1:8080", token: t}`,
        `instances: [{name: f, forgejo: {base_url: "https://forgejo.example", token: t}, targets: [{labels: [linux]}]}]`,
        `replicas: {store: "${urls.autoscaler}"}`,
      ].join("\n"),
      "autoscaler.yaml",
      {},
    );
    expect(postgresTarget(config.replicas!.store).pool).toMatchObject({ host: "/run/postgresql", user: "forgejo-nsc-autoscaler" });
  });
});


describe("the settings the NixOS module writes, read by the daemons' own config code", () => {
  type Pair = { dispatcher: Tree; autoscaler: Tree };
  let settings: { sqlite: Pair; local: Pair; remote: Pair };
  const tmp = tempDir("fnsc-nix-");
  // What the operator writes beside the module's own settings, and the systemd credential of postgresUrlFile.
  const own = {
    dispatcher: { forgejo: { base_url: "https://forgejo.example", token: "t" } },
    autoscaler: {
      dispatcher: { token: "t" },
      instances: [{ name: "f", forgejo: { base_url: "https://forgejo.example", token: "t" }, targets: [{ labels: ["linux"] }] }],
    },
  };
  const REMOTE_URL = "postgres://fnsc:nix-remote-pw@db.internal:5432/fnsc?sslmode=verify-full";
  beforeAll(() => {
    settings = staticNix().settings as typeof settings;
    writeFileSync(join(tmp.dir, "postgres-url"), `${REMOTE_URL}\n`);
  });
  afterAll(() => tmp.cleanup());

  const read = (which: keyof typeof settings) => {
    const env = { CREDENTIALS_DIRECTORY: tmp.dir };
    const yaml = (daemon: keyof Pair) => JSON.stringify(deepMerge(settings[which][daemon], own[daemon]));
    return {
      dispatcher: parseConfig(dispatcherConfigSchema, yaml("dispatcher"), `${which} dispatcher`, env),
      autoscaler: parseConfig(autoscalerConfigSchema, yaml("autoscaler"), `${which} autoscaler`, env),
    };
  };

  it("by default: SQLite in the state directory, the autoscaler talking to the local dispatcher", () => {
    const c = read("sqlite");
    expect(c.dispatcher.dispatcher.state_path).toBe("/var/lib/forgejo-nsc-dispatcher/dispatcher.db");
    expect(c.dispatcher.dispatcher.store).toBeUndefined();
    expect(c.autoscaler.dispatcher?.url).toBe("http://127.0.0.1:8080");
    expect(c.autoscaler.replicas).toBeUndefined();
  });

  it("postgresql.createLocally: both daemons on their own database over the socket", () => {
    const c = read("local");
    expect(c.dispatcher.dispatcher.store).toBe("postgres://forgejo-nsc-dispatcher@/forgejo-nsc-dispatcher?host=/run/postgresql");
    expect(c.autoscaler.replicas?.store).toBe("postgres://forgejo-nsc-autoscaler@/forgejo-nsc-autoscaler?host=/run/postgresql");
  });

  it("postgresUrlFile: both daemons read the URL from the systemd credential", () => {
    const c = read("remote");
    expect(c.dispatcher.dispatcher.store).toBe(REMOTE_URL);
    expect(c.autoscaler.replicas?.store).toBe(REMOTE_URL);
  });
});

