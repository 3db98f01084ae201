import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { StateDatabaseError } from "../../src/store/errors.js";
import { postgresTarget, redactUrl } from "../../src/store/postgres/postgres-config.js";
import { tempDir } from "../helpers/tmp.js";

const PW = "s3cr3t-pw";

describe("postgresTarget", () => {
  let tmp: ReturnType<typeof tempDir>;
  let ca: string;
  beforeEach(() => {
    tmp = tempDir("fnsc-pgcfg-");
    ca = join(tmp.dir, "ca.pem");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  });
  afterEach(() => tmp.cleanup());

  it("reads host, port, user, password and database, and shows the URL without the password", () => {
    const t = postgresTarget(`postgres://fnsc:${encodeURIComponent("p@ss/w:rd")}@db.example:6432/dispatch?application_name=fnsc-a`);
    expect(t.pool).toMatchObject({
      host: "db.example",
      port: 6432,
      user: "fnsc",
      password: "p@ss/w:rd",
      database: "dispatch",
      application_name: "fnsc-a",
      ssl: false,
    });
    expect(t.display).toBe("postgres://fnsc@db.example:6432/dispatch");
    expect(t.schema).toBe("public");
    expect(t.pool.options).toBe("-c search_path=public");
  });

  it.each([
    // The NixOS module's URL for services.forgejo-nsc.postgresql.createLocally (nix/module.nix, localPgUrl).
    [
      "postgres://forgejo-nsc-dispatcher@/forgejo-nsc-dispatcher?host=/run/postgresql",
      { host: "/run/postgresql", user: "forgejo-nsc-dispatcher", database: "forgejo-nsc-dispatcher" },
    ],
    [`postgres://fnsc:${encodeURIComponent("p@ss/w")}@/d`, { host: "localhost", user: "fnsc", password: "p@ss/w", database: "d" }],
    ["postgres:///d?host=/run/postgresql&user=fnsc", { host: "/run/postgresql", user: "fnsc", database: "d" }],
  ])("reads libpq's URL without a host, %s (new URL refuses a user without a host)", (url, pool) => {
    expect(postgresTarget(url).pool).toMatchObject(pool);
  });

  it("applies the pool size, timeouts and schema, with defaults", () => {
    expect(postgresTarget("postgresql://u@h/d").pool).toMatchObject({
      max: 10,
      statement_timeout: 10_000,
      connectionTimeoutMillis: 5_000,
      port: 5432,
    });
    const t = postgresTarget("postgres://u@h/d", { poolSize: 3, statementTimeoutMs: 250, connectTimeoutMs: 900, schema: "fleet_b" });
    expect(t.pool).toMatchObject({ max: 3, statement_timeout: 250, connectionTimeoutMillis: 900, options: "-c search_path=fleet_b" });
  });

  const tlsCases: [string, string, { caFile?: boolean; rejectUnauthorized?: boolean } | undefined, unknown][] = [
    ["no sslmode, no tls options: plain", "", undefined, false],
    ["sslmode=disable", "?sslmode=disable", undefined, false],
    ["sslmode=require: encrypted, not verified", "?sslmode=require", undefined, { rejectUnauthorized: false }],
    [
      "sslmode=require with a CA: verified like verify-ca",
      "?sslmode=require",
      { caFile: true },
      { rejectUnauthorized: true, ca: "PEM", checkServerIdentity: "skip" },
    ],
    ["sslmode=verify-ca", "?sslmode=verify-ca", { caFile: true }, { rejectUnauthorized: true, ca: "PEM", checkServerIdentity: "skip" }],
    ["sslmode=verify-full", "?sslmode=verify-full", undefined, { rejectUnauthorized: true }],
    ["tls.ca_file alone turns on verify-full", "", { caFile: true }, { rejectUnauthorized: true, ca: "PEM" }],
    ["tls.reject_unauthorized: false wins", "?sslmode=verify-full", { rejectUnauthorized: false }, { rejectUnauthorized: false }],
  ];
  it.each(tlsCases)("TLS: %s", (_name, query, tls, expected) => {
    const t = postgresTarget(`postgres://u:${PW}@h/d${query}`, {
      tls: tls && { caFile: tls.caFile ? ca : undefined, rejectUnauthorized: tls.rejectUnauthorized },
    });
    const ssl = t.pool.ssl;
    if (expected === false) {
      expect(ssl).toBe(false);
      return;
    }
    const shown = { ...(ssl as Record<string, unknown>) };
    if (typeof shown.ca === "string") shown.ca = "PEM";
    if (typeof shown.checkServerIdentity === "function") shown.checkServerIdentity = "skip";
    expect(shown).toEqual(expected);
  });

  it("reads the CA from sslrootcert in the URL", () => {
    const ssl = postgresTarget(`postgres://u@h/d?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`).pool.ssl as { ca?: string };
    expect(ssl.ca).toContain("BEGIN CERTIFICATE");
  });

  const refusals: [string, string, PostgresTargetOptions, RegExp][] = [
    [
      "sslmode=prefer (no fallback in node-postgres)",
      `postgres://u:${PW}@h/d?sslmode=prefer`,
      {},
      /sslmode=prefer, which node-postgres cannot do; use one of disable, require, verify-ca, verify-full/,
    ],
    ["an unknown parameter", `postgres://u:${PW}@h/d?connect_timeout=3`, {}, /parameter connect_timeout, which forgejo-nsc does not use/],
    [
      "sslmode=disable with tls options",
      `postgres://u:${PW}@h/d?sslmode=disable`,
      { tls: { rejectUnauthorized: true } },
      /sslmode=disable but dispatcher.postgres.tls is set/,
    ],
    [
      "a missing CA file",
      `postgres://u:${PW}@h/d`,
      { tls: { caFile: "/nonexistent/ca.pem" } },
      /cannot read dispatcher.postgres.tls.ca_file \/nonexistent\/ca.pem \(ENOENT\)/,
    ],
    [
      "a schema name that would need quoting",
      `postgres://u:${PW}@h/d`,
      { schema: "Fleet-B" },
      /dispatcher.postgres.schema "Fleet-B" must be lower-case/,
    ],
    ["a URL of another database", `mysql://u:${PW}@h/d`, {}, /must be a postgres:\/\/ or postgresql:\/\/ URL/],
    ["a URL that does not parse", `postgres://u:${PW}@h:99999/d`, {}, /is not a valid URL \(postgres:\/\/u:…@h:99999\/d\)/],
  ];
  it.each(refusals)("refuses %s, naming what is wrong and never the password", (_name, url, options, message) => {
    let err: unknown;
    try {
      postgresTarget(url, options);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDatabaseError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain(PW);
  });
});

type PostgresTargetOptions = NonNullable<Parameters<typeof postgresTarget>[1]>;

describe("redactUrl", () => {
  it.each([
    ["postgres://u:pw@h/d", "postgres://u:…@h/d"],
    ["postgres://u:p/w?x@h/d", "postgres://u:…@h/d"],
    ["postgres://u@h/d?password=pw&sslmode=require", "postgres://u@h/d?password=…&sslmode=require"],
    ["postgres://h/d", "postgres://h/d"],
    ["failed for postgres://a:b@h/d, retrying", "failed for postgres://a:…@h/d, retrying"],
  ])("%s → %s", (input, shown) => {
    expect(redactUrl(input)).toBe(shown);
  });
});

describe("dispatcher.store in the config", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir("fnsc-pgconf-");
  });
  afterEach(() => tmp.cleanup());

  const base = "forgejo: {base_url: 'https://f.example', token: t}\n";
  const parse = (yaml: string) => parseConfig(dispatcherConfigSchema, base + yaml, "d.yaml", {}).dispatcher;
  const problems = (yaml: string): string[] => {
    try {
      parse(yaml);
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    throw new Error("expected a ConfigError");
  };

  it("keeps SQLite at the default path when neither key is set", () => {
    const d = parse("");
    expect(d.store).toBeUndefined();
    expect(d.state_path).toBe("./forgejo-nsc-dispatcher.db");
    expect(d.postgres).toEqual({ pool_size: 10, statement_timeout: 10_000, connect_timeout: 5_000, schema: "public" });
  });

  it("reads the URL from store_file, and the PostgreSQL settings", () => {
    const file = join(tmp.dir, "store-url");
    writeFileSync(file, `postgres://fnsc:${PW}@db/fnsc?sslmode=verify-full\n`);
    const d = parse(
      `dispatcher:\n  store_file: ${file}\n  postgres: {pool_size: 4, statement_timeout: 2s, connect_timeout: 1s, schema: fleet_a, tls: {ca_file: /etc/ca.pem, reject_unauthorized: true}}\n`,
    );
    expect(d.store).toBe(`postgres://fnsc:${PW}@db/fnsc?sslmode=verify-full`);
    expect(d.postgres).toEqual({
      pool_size: 4,
      statement_timeout: 2000,
      connect_timeout: 1000,
      schema: "fleet_a",
      tls: { ca_file: "/etc/ca.pem", reject_unauthorized: true },
    });
  });

  it.each([
    [
      "both keys",
      `dispatcher: {store: "postgres://u:${PW}@h/d", state_path: /var/lib/x.db}`,
      "dispatcher.state_path: set either dispatcher.state_path (SQLite) or dispatcher.store (PostgreSQL), not both",
    ],
    [
      "a PostgreSQL URL in state_path",
      `dispatcher: {state_path: "postgres://u:${PW}@h/d"}`,
      "dispatcher.state_path: is a PostgreSQL URL; state_path names the SQLite file: put the URL in dispatcher.store (or store_file) instead",
    ],
    [
      "a store that is not a PostgreSQL URL",
      `dispatcher: {store: "mysql://u:${PW}@h/d"}`,
      "dispatcher.store: must be a postgres:// or postgresql:// URL; for SQLite set dispatcher.state_path and leave store out",
    ],
    [
      "store and store_file",
      `dispatcher: {store: "postgres://u:${PW}@h/d", store_file: FILE}`,
      "dispatcher.store_file: set either store or store_file, not both",
    ],
    ["an unknown postgres key", "dispatcher: {postgres: {poolsize: 3}}", 'dispatcher.postgres: Unrecognized key: "poolsize"'],
  ])("refuses %s without echoing the URL", (_name, yaml, problem) => {
    const file = join(tmp.dir, "url");
    writeFileSync(file, `postgres://u:${PW}@h/d`);
    const found = problems(yaml.replace("FILE", file));
    expect(found).toEqual([problem]);
    expect(found.join("\n")).not.toContain(PW);
  });
});
