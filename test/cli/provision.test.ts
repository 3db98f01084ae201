import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { loadConfigFile } from "../../src/config/load.js";
import { FAKE_ADMIN_PASSWORD, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { tempDir } from "../helpers/tmp.js";
import { memoryIo } from "./memory-io.js";

const NOW = new Date("2026-08-01T12:00:00.000Z");
const ALICE_PASSWORD = "alice-correct-horse-battery";
const BOB_PASSWORD = "bob-password-123456";
const SECRET_FILES = ["forgejo-token", "webhook-secret", "dispatcher-token", "nsc-token.json"];
const ALL_FILES = ["dispatcher.yaml", "autoscaler.yaml", ...SECRET_FILES];

let forgejo: FakeForgejo;
let nsc: FakeNsc;
let tmp: { dir: string; cleanup: () => void };
let out: string;

beforeEach(async () => {
  forgejo = await startFakeForgejo({
    users: [
      { login: "admin", password: FAKE_ADMIN_PASSWORD, isAdmin: true },
      { login: "alice", password: ALICE_PASSWORD },
      { login: "bob", password: BOB_PASSWORD },
    ],
    orgs: [{ name: "acme", owners: ["alice"] }],
    repos: [{ owner: "acme", name: "app" }],
  });
  tmp = tempDir("fnsc-provision-");
  nsc = createFakeNsc(join(tmp.dir, "nsc"));
  out = join(tmp.dir, "out");
});

afterEach(async () => {
  await forgejo.close();
  tmp.cleanup();
});

function env(extra: Record<string, string> = {}): Record<string, string | undefined> {
  return { PATH: process.env.PATH, HOME: tmp.dir, ...nsc.env, ...extra };
}

function passwordFile(content: string): string {
  const f = join(tmp.dir, `pw-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, `${content}\n`, { mode: 0o600 });
  return f;
}

async function provision(args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}) {
  const m = memoryIo({ now: () => NOW, env: env(opts.env), stdin: opts.stdin });
  const code = await runCli(["provision", "--out", out, "--forgejo-url", forgejo.url, "--nsc", nsc.bin, ...args], m.io);
  return { code, stdout: m.stdout(), stderr: m.stderr(), all: m.all() };
}

const mode = (p: string) => statSync(p).mode & 0o777;
const read = (name: string) => readFileSync(join(out, name), "utf8");
const tokenCreates = () => nsc.calls("token create");

/**
 * Every secret the run produced or consumed must be absent from what it printed. `atLeast` is how
 * many distinct secrets the run must have had to check: a scan that finds no files and no tokens
 * would otherwise pass without checking anything.
 */
function expectNoSecrets(printed: string, extra: string[], atLeast: number) {
  const secrets = [...extra];
  for (const f of ["forgejo-token", "webhook-secret", "dispatcher-token"]) {
    try {
      secrets.push(read(f).trim());
    } catch {
      // not written in this run
    }
  }
  try {
    secrets.push((JSON.parse(read("nsc-token.json")) as { bearer_token: string }).bearer_token);
  } catch {
    // not written in this run
  }
  for (const t of forgejo.state.tokens) secrets.push(t.token);
  for (const t of nsc.state().tokens) secrets.push(t.token);
  const checked = new Set(secrets.filter((x) => x.length >= 8));
  expect(checked.size).toBeGreaterThanOrEqual(atLeast);
  for (const s of checked) expect(printed).not.toContain(s);
}

describe("forgejo-nsc provision", () => {
  it("mints an instance PAT, creates a Namespace token, and writes validated configs and 0600 secrets into a 0700 directory", async () => {
    const r = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--region",
      "ord4",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);

    // Files and modes; nothing else left behind (no staging directory).
    expect(readdirSync(out).sort()).toEqual([...ALL_FILES].sort());
    expect(mode(out)).toBe(0o700);
    for (const f of ALL_FILES) expect(mode(join(out, f)), f).toBe(0o600);

    // The PAT request: Basic auth of the user, a dated name, exactly the scope the instance level needs.
    const mint = forgejo.callsTo("/api/v1/users/admin/tokens", "POST");
    expect(mint).toHaveLength(1);
    expect(mint[0]!.auth).toMatchObject({ present: true, scheme: "basic", user: "admin" });
    expect(mint[0]!.body).toEqual({ name: "forgejo-nsc-20260801T120000Z", scopes: ["write:admin"] });
    const minted = forgejo.state.tokens.find((t) => t.name === "forgejo-nsc-20260801T120000Z")!;
    expect(minted).toMatchObject({ user: "admin", scopes: ["write:admin"] });
    expect(read("forgejo-token")).toBe(`${minted.token}\n`);
    // The token was checked where the daemons will use it, with the token itself.
    const checks = forgejo.calls.filter((c) => c.auth.token === minted.token).map((c) => `${c.method} ${c.path} ${c.status}`);
    // The creation probe has an empty body: refused with 422 after the scope and role checks, nothing created.
    expect(checks).toEqual(["GET /api/v1/admin/hooks 200", "GET /api/v1/admin/runners/jobs 200", "POST /api/v1/admin/hooks 422"]);
    expect(forgejo.state.hooks).toEqual([]);

    // The Namespace token: login checked first, then a revocable token written as {"bearer_token": …}.
    expect(nsc.calls().map((c) => c.command)).toEqual(["auth check-login", "token create"]);
    const create = tokenCreates()[0]!;
    expect(create.env.NS_DO_NOT_UPDATE).toBe("1");
    const argv = create.argv;
    expect(argv.slice(0, 2)).toEqual(["token", "create"]);
    expect(argv[argv.indexOf("--name") + 1]).toBe("forgejo-nsc-20260801T120000Z");
    expect(argv[argv.indexOf("--expires_in") + 1]).toBe("2160h");
    expect(JSON.parse(argv[argv.indexOf("--grant") + 1]!)).toEqual({
      resource_type: "instance",
      resource_id: "*",
      actions: ["create", "list", "get", "wait", "destroy"],
    });
    expect(argv[argv.indexOf("--token_file") + 1]).toMatch(new RegExp(`^${out}/\\.provision-[^/]+/`));
    const nscTokens = nsc.state().tokens;
    expect(nscTokens).toHaveLength(1);
    expect(JSON.parse(read("nsc-token.json"))).toEqual({ bearer_token: nscTokens[0]!.token });
    expect(nscTokens[0]!.token).toMatch(/^nsrt_fake/);

    // Generated secrets: 32 random bytes each.
    expect(read("webhook-secret")).toMatch(/^[0-9a-f]{64}\n$/);
    expect(read("dispatcher-token")).toMatch(/^[A-Za-z0-9_-]{43}\n$/);

    // Both configs load with the daemons' own loader, secrets resolved from the files beside them.
    const d = loadConfigFile(dispatcherConfigSchema, join(out, "dispatcher.yaml"), {});
    expect(d.forgejo.base_url).toBe(forgejo.url);
    expect(d.forgejo.token).toBe(minted.token);
    expect(d.forgejo.default_scope).toEqual({ level: "instance" });
    expect(d.forgejo.default_labels).toEqual(["namespace-profile-linux-medium"]);
    expect(d.namespace.token_file).toBe(join(out, "nsc-token.json"));
    expect(d.namespace.region).toBe("ord4");
    expect(d.namespace.nsc_binary).toBe(nsc.bin);
    expect(d.auth.tokens).toEqual([read("dispatcher-token").trim()]);
    const a = loadConfigFile(autoscalerConfigSchema, join(out, "autoscaler.yaml"), {});
    expect(a.dispatcher).toMatchObject({ url: "http://127.0.0.1:8080", token: read("dispatcher-token").trim() });
    expect(a.auth.tokens).toEqual([read("dispatcher-token").trim()]);
    expect(a.instances).toHaveLength(1);
    const inst = a.instances[0]!;
    expect(inst.name).toBe("forgejo"); // the host is an IP address, so the default name is used
    expect(inst.forgejo).toMatchObject({ base_url: forgejo.url, token: minted.token });
    expect(inst.webhook_secret).toBe(read("webhook-secret").trim());
    expect(inst.webhook).toBeUndefined();
    expect(inst.targets.map((t) => t.labels)).toEqual([["namespace-profile-linux-medium"]]);
    // Secrets only through *_file keys: no secret value inside the YAML text.
    for (const y of ["dispatcher.yaml", "autoscaler.yaml"]) {
      const text = read(y);
      expect(text).toContain("token_file:");
      for (const f of SECRET_FILES) expect(text).not.toContain(read(f).trim());
      expect(text).not.toContain(nscTokens[0]!.token);
    }

    // The summary: what was written and the next steps, never a secret.
    expect(r.stdout).toContain(`Wrote 6 files to ${out} (directory 0700, files 0600):`);
    expect(r.stdout).toContain(`Forgejo token: created "forgejo-nsc-20260801T120000Z" for user admin with scope write:admin`);
    expect(r.stdout).toContain(`forgejo-nsc-dispatcher --config ${join(out, "dispatcher.yaml")}`);
    expect(r.stdout).toContain(`forgejo-nsc-autoscaler --config ${join(out, "autoscaler.yaml")}`);
    expect(r.stdout).toContain(`forgejo-nsc status --token-file ${join(out, "dispatcher-token")}`);
    expect(r.stdout).toMatch(/target URL http:\/\/127\.0\.0\.1:8081\/webhook\/\S+ /);
    expect(r.stdout).toContain("--forgejo-runner-url"); // a loopback Forgejo cannot be reached from Namespace
    expectNoSecrets(r.all, [FAKE_ADMIN_PASSWORD], 6);
  });

  it("mints an organization PAT for an org owner with the password on stdin, and a repository PAT with FORGEJO_PASSWORD", async () => {
    const org = await provision(["--scope", "org:acme", "--forgejo-user", "alice", "--forgejo-password-stdin", "--name", "main"], {
      stdin: `${ALICE_PASSWORD}\n`,
    });
    expect(org.stderr).toBe("");
    expect(org.code).toBe(0);
    expect(forgejo.callsTo("/api/v1/users/alice/tokens", "POST")[0]!.body).toMatchObject({ scopes: ["write:organization"] });
    const tok = read("forgejo-token").trim();
    expect(forgejo.calls.filter((c) => c.auth.token === tok).map((c) => `${c.method} ${c.path} ${c.status}`)).toEqual([
      "GET /api/v1/orgs/acme/hooks 200",
      "GET /api/v1/orgs/acme/actions/runners/jobs 200",
      "POST /api/v1/orgs/acme/hooks 422",
    ]);
    const a = loadConfigFile(autoscalerConfigSchema, join(out, "autoscaler.yaml"), {});
    expect(a.instances[0]!.scope).toEqual({ level: "organization", owner: "acme" });
    expect(a.instances[0]!.name).toBe("main");
    expect(org.stdout).toContain("/webhook/main");
    expectNoSecrets(org.all, [ALICE_PASSWORD], 6);

    out = join(tmp.dir, "out-repo");
    const repo = await provision(
      ["--scope", "repo:acme/app", "--forgejo-user", "alice", "--pat-name", "ci-runners", "--nsc-token", "none"],
      {
        env: { FORGEJO_PASSWORD: ALICE_PASSWORD },
      },
    );
    expect(repo.stderr).toBe("");
    expect(repo.code).toBe(0);
    expect(forgejo.callsTo("/api/v1/users/alice/tokens", "POST")[1]!.body).toEqual({ name: "ci-runners", scopes: ["write:repository"] });
    const d = loadConfigFile(dispatcherConfigSchema, join(out, "dispatcher.yaml"), {});
    expect(d.forgejo.default_scope).toEqual({ level: "repository", owner: "acme", name: "app" });
    expectNoSecrets(repo.all, [ALICE_PASSWORD], 7);
  });

  it("a wrong password is a clear error naming the user and what to do; nothing is created or written", async () => {
    const wrong = "not-the-password-42";
    const r = await provision(["--forgejo-user", "alice", "--forgejo-password-file", passwordFile(wrong), "--scope", "org:acme"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Forgejo at ${forgejo.url} rejected the credentials of user "alice" (401)`);
    expect(r.stderr).toContain("Check the password given through --forgejo-password-file, FORGEJO_PASSWORD or --forgejo-password-stdin");
    expect(r.stderr).toContain("--forgejo-otp");
    expect(r.stderr).toContain("--forgejo-token-file");
    expect(r.all).not.toContain(wrong);
    expect(forgejo.state.tokens.filter((t) => t.user === "alice")).toEqual([]);
    expect(tokenCreates()).toEqual([]);
    // The run created --out, so a failed run removes it again rather than leave it empty.
    expect(existsSync(out)).toBe(false);
  });

  it("refuses to overwrite without --force, before creating any token; --force replaces every file", async () => {
    const pw = passwordFile(FAKE_ADMIN_PASSWORD);
    expect((await provision(["--forgejo-user", "admin", "--forgejo-password-file", pw])).code).toBe(0);
    const before = Object.fromEntries(ALL_FILES.map((f) => [f, read(f)]));
    const patsBefore = forgejo.state.tokens.length;
    const nscCallsBefore = nsc.calls().length;

    const again = await provision(["--forgejo-user", "admin", "--forgejo-password-file", pw, "--pat-name", "second"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`refusing to overwrite ${join(out, "dispatcher.yaml")}, ${join(out, "autoscaler.yaml")}`);
    expect(again.stderr).toContain("pass --force");
    expect(forgejo.state.tokens.length).toBe(patsBefore);
    expect(nsc.calls().length).toBe(nscCallsBefore);
    for (const f of ALL_FILES) expect(read(f)).toBe(before[f]);

    // One pre-existing file is enough to refuse.
    out = join(tmp.dir, "out-partial");
    mkdirSync(out, { mode: 0o700 });
    writeFileSync(join(out, "webhook-secret"), "keep me\n");
    const partial = await provision(["--forgejo-user", "admin", "--forgejo-password-file", pw, "--pat-name", "third"]);
    expect(partial.code).toBe(1);
    expect(partial.stderr).toContain(`refusing to overwrite ${join(out, "webhook-secret")}:`);
    expect(readdirSync(out)).toEqual(["webhook-secret"]);

    out = join(tmp.dir, "out");
    const forced = await provision(["--forgejo-user", "admin", "--forgejo-password-file", pw, "--pat-name", "fourth", "--force"]);
    expect(forced.stderr).toBe("");
    expect(forced.code).toBe(0);
    for (const f of SECRET_FILES) expect(read(f), f).not.toBe(before[f]);
    for (const f of ALL_FILES) expect(mode(join(out, f))).toBe(0o600);
    expect(readdirSync(out).sort()).toEqual([...ALL_FILES].sort());
    expect(read("forgejo-token").trim()).toBe(forgejo.state.tokens.find((t) => t.name === "fourth")!.token);
  });

  it("takes an existing PAT and a raw Namespace token file (wrapped as JSON), and checks the PAT", async () => {
    const pat = "0123456789abcdef0123456789abcdef01234567";
    forgejo.addToken(pat, ["write:repository"], "alice");
    const patFile = passwordFile(pat);
    const rawNsc = join(tmp.dir, "dev-token.txt");
    writeFileSync(rawNsc, "nsct_raw_token_value_0123456789");
    const r = await provision(["--scope", "repo:acme/app", "--forgejo-token-file", patFile, "--nsc-token-file", rawNsc]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(read("forgejo-token")).toBe(`${pat}\n`);
    expect(JSON.parse(read("nsc-token.json"))).toEqual({ bearer_token: "nsct_raw_token_value_0123456789" });
    expect(forgejo.callsTo("/tokens", "POST")).toEqual([]);
    expect(nsc.calls()).toEqual([]);
    expect(forgejo.calls.filter((c) => c.auth.token === pat).map((c) => `${c.method} ${c.path}`)).toEqual([
      "GET /api/v1/repos/acme/app/hooks",
      "GET /api/v1/repos/acme/app/actions/runners/jobs",
      "POST /api/v1/repos/acme/app/hooks",
    ]);
    expect(r.stdout).toContain(`Forgejo token: taken from ${patFile}`);
    expectNoSecrets(r.all, ["nsct_raw_token_value_0123456789"], 5);
  });

  it("a PAT that cannot serve the scope is refused with the scope and role it needs, naming the minted token to delete", async () => {
    const r = await provision(["--forgejo-user", "bob", "--forgejo-password-file", passwordFile(BOB_PASSWORD)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("the Forgejo token does not work for instance");
    expect(r.stderr).toContain("403");
    expect(r.stderr).toContain("must be a site administrator");
    expect(r.stderr).toContain('The Forgejo token "forgejo-nsc-20260801T120000Z" was already created: delete it');
    expect(existsSync(out)).toBe(false);
    expect(tokenCreates()).toEqual([]);

    const weak = "fedcba9876543210fedcba9876543210fedcba98";
    forgejo.addToken(weak, ["read:organization"], "alice");
    const r2 = await provision(["--scope", "org:acme", "--forgejo-token-file", passwordFile(weak), "--nsc-token", "none"]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain("the token cannot use webhook creation (write access) of org:acme (403)");
    expect(r2.stderr).toContain("it needs the scope write:organization and its user must be an owner of the organization acme");
    expect(r2.all).not.toContain(weak);
    // --skip-verify writes anyway (for Forgejo set-ups the check cannot see through).
    const r3 = await provision(["--scope", "org:acme", "--forgejo-token-file", passwordFile(weak), "--nsc-token", "none", "--skip-verify"]);
    expect(r3.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["autoscaler.yaml", "dispatcher-token", "dispatcher.yaml", "forgejo-token", "webhook-secret"]);
    const d = loadConfigFile(dispatcherConfigSchema, join(out, "dispatcher.yaml"), {});
    expect(d.namespace.token_file).toBeUndefined();
  });

  it("a failed run keeps a directory that existed before, with what was in it", async () => {
    mkdirSync(out, { mode: 0o700 });
    writeFileSync(join(out, "notes.txt"), "mine\n");
    const r = await provision([
      "--forgejo-user",
      "alice",
      "--forgejo-password-file",
      passwordFile("wrong-password-0000"),
      "--scope",
      "org:acme",
    ]);
    expect(r.code).toBe(1);
    expect(readdirSync(out)).toEqual(["notes.txt"]);
  });

  it("--force with --nsc-token none removes the old Namespace token file the new configs no longer name", async () => {
    const pw = passwordFile(FAKE_ADMIN_PASSWORD);
    expect((await provision(["--forgejo-user", "admin", "--forgejo-password-file", pw])).code).toBe(0);
    const oldNscToken = read("nsc-token.json");
    const again = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      pw,
      "--pat-name",
      "second",
      "--nsc-token",
      "none",
      "--force",
    ]);
    expect(again.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["autoscaler.yaml", "dispatcher-token", "dispatcher.yaml", "forgejo-token", "webhook-secret"]);
    expect(again.stderr).toContain(`removed ${join(out, "nsc-token.json")}`);
    expect(again.stderr).toContain("nsc token revoke");
    expect(again.all).not.toContain(JSON.parse(oldNscToken).bearer_token);
    expect(loadConfigFile(dispatcherConfigSchema, join(out, "dispatcher.yaml"), {}).namespace.token_file).toBeUndefined();
  });

  it("--nsc-token dev wraps a generate-dev-token token and warns that it expires in about an hour", async () => {
    const r = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--nsc-token",
      "dev",
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("warning: a token from nsc auth generate-dev-token expires in about an hour");
    const dev = nsc.state().tokens.find((t) => t.kind === "dev")!;
    expect(JSON.parse(read("nsc-token.json"))).toEqual({ bearer_token: dev.token });
    expect(nsc.calls().map((c) => c.command)).toEqual(["auth check-login", "auth generate-dev-token"]);
    expect(readdirSync(out).sort()).toEqual([...ALL_FILES].sort());
    expectNoSecrets(r.all, [FAKE_ADMIN_PASSWORD], 6);
  });

  it("nsc without a login fails before a Forgejo token is minted, saying to run nsc login", async () => {
    nsc.setKnobs({ auth: "not_logged_in" });
    const r = await provision(["--forgejo-user", "admin", "--forgejo-password-file", passwordFile(FAKE_ADMIN_PASSWORD)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("checking the Namespace login (nsc auth check-login) failed (nsc exit 1): not logged in");
    expect(r.stderr).toContain("run nsc login as this user first");
    expect(forgejo.callsTo("/tokens", "POST")).toEqual([]);
    expect(existsSync(out)).toBe(false);

    const missing = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--nsc",
      join(tmp.dir, "no-such-nsc"),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("nsc not found at");
    expect(missing.stderr).toContain("--nsc-token none");
  });

  it("a failing nsc token create after the PAT was minted names the PAT to delete and writes nothing", async () => {
    // nsc rejects a grant that is not JSON; the login check before it passes.
    const r = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--nsc-grant",
      "{not json",
    ]);
    expect(r.code).toBe(1);
    expect(nsc.calls().map((c) => [c.command, c.exitCode])).toEqual([
      ["auth check-login", 0],
      ["token create", 1],
    ]);
    expect(r.stderr).toContain(
      'creating the Namespace token "forgejo-nsc-20260801T120000Z" (nsc token create) failed (nsc exit 1): invalid --grant',
    );
    expect(r.stderr).toContain(
      'The Forgejo token "forgejo-nsc-20260801T120000Z" was already created: delete it in Settings → Applications of admin',
    );
    expect(forgejo.state.tokens.filter((t) => t.name === "forgejo-nsc-20260801T120000Z")).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
    expectNoSecrets(r.all, [FAKE_ADMIN_PASSWORD], 3);
  });

  it("--public-url lets the autoscaler manage the webhook; --config-dir points the configs at the final location", async () => {
    const r = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--nsc-token",
      "none",
      "--public-url",
      "https://ci.example.com/",
      "--name",
      "codeberg",
      "--config-dir",
      "/etc/forgejo-nsc",
      "--forgejo-runner-url",
      "https://git.example.com",
      "--labels",
      "namespace-profile-linux-medium,namespace-profile-linux-large",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const a = parseYaml(read("autoscaler.yaml")) as {
      instances: { webhook: { url: string }; webhook_secret_file: string; targets: { labels: string[] }[] }[];
    };
    expect(a.instances[0]!.webhook).toEqual({ url: "https://ci.example.com/webhook/codeberg" });
    expect(a.instances[0]!.webhook_secret_file).toBe("/etc/forgejo-nsc/webhook-secret");
    expect(a.instances[0]!.targets[0]!.labels).toEqual(["namespace-profile-linux-medium", "namespace-profile-linux-large"]);
    const d = parseYaml(read("dispatcher.yaml")) as {
      forgejo: { token_file: string; instance_url: string };
      auth: { tokens_file: string };
    };
    expect(d.forgejo.token_file).toBe("/etc/forgejo-nsc/forgejo-token");
    expect(d.forgejo.instance_url).toBe("https://git.example.com");
    expect(d.auth.tokens_file).toBe("/etc/forgejo-nsc/dispatcher-token");
    expect(r.stdout).toContain("The configs refer to /etc/forgejo-nsc: copy every file there");
    expect(r.stdout).toContain("The autoscaler creates the webhook https://ci.example.com/webhook/codeberg at instance itself");
    expect(r.stdout).not.toContain("--forgejo-runner-url");
  });

  it("a flag value the daemons would reject fails before any token is created", async () => {
    const r = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--dispatcher-listen",
      "localhost:http",
      "--labels",
      "linux medium",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid configuration in the rendered dispatcher.yaml:");
    expect(r.stderr).toContain("listen: must look like");
    expect(r.stderr).toContain("Fix the flags that fed these keys");
    expect(forgejo.callsTo("/tokens", "POST")).toEqual([]);
    expect(nsc.calls()).toEqual([]);
    expect(existsSync(out)).toBe(false);

    const labels = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--labels",
      "linux medium",
    ]);
    expect(labels.code).toBe(1);
    expect(labels.stderr).toContain("invalid configuration in the rendered autoscaler.yaml:");
    expect(labels.stderr).toContain("instances[0].targets[0].labels[0]: must not contain commas or whitespace");
    expect(forgejo.callsTo("/tokens", "POST")).toEqual([]);
  });

  it("tightens an existing group-readable --out directory to 0700 and says so", async () => {
    mkdirSync(out);
    chmodSync(out, 0o755);
    const r = await provision([
      "--forgejo-user",
      "admin",
      "--forgejo-password-file",
      passwordFile(FAKE_ADMIN_PASSWORD),
      "--nsc-token",
      "none",
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`note: ${out} was mode 755; changed it to 700`);
    expect(mode(out)).toBe(0o700);
  });

  it("usage errors exit 2 and name the problem", async () => {
    const cases: [string[], string][] = [
      [["provision"], "--out <dir> is required"],
      [["provision", "--out", "/tmp/x"], "--forgejo-url <url> is required"],
      [["provision", "--out", "/tmp/x", "--forgejo-url", "https://f.example"], "a Forgejo token is needed"],
      [
        ["provision", "--out", "/tmp/x", "--forgejo-url", "https://f.example", "--forgejo-user", "a", "--forgejo-token-file", "t"],
        "either --forgejo-token-file",
      ],
      [
        ["provision", "--out", "/tmp/x", "--forgejo-url", "https://f.example", "--forgejo-user", "a", "--scope", "team:x"],
        '--scope "team:x" is not a scope',
      ],
      [
        ["provision", "--out", "/tmp/x", "--forgejo-url", "https://f.example", "--forgejo-user", "a", "--scope", "repo:acme"],
        "--scope repo:acme: name required",
      ],
      [["provision", "--out", "/tmp/x", "--forgejo-url", "ftp://f.example", "--forgejo-user", "a"], "--forgejo-url must be an http(s) URL"],
      [["provision", "--out", "/tmp/x", "--forgejo-url", "https://u:p@f.example", "--forgejo-user", "a"], "must not contain credentials"],
      [
        ["provision", "--out", "/tmp/x", "--forgejo-url", "https://f.example", "--forgejo-user", "a", "--nsc-token", "magic"],
        '--nsc-token "magic" is not a mode',
      ],
      [["provision", "--forgejo-password", "hunter2"], "unknown flag --forgejo-password"],
    ];
    for (const [argv, message] of cases) {
      const m = memoryIo({ now: () => NOW });
      expect(await runCli(argv, m.io), argv.join(" ")).toBe(2);
      expect(m.stderr(), argv.join(" ")).toContain(message);
      expect(m.stderr()).not.toContain("hunter2");
    }
  });
});
