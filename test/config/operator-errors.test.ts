import { execFile } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { configProblems } from "../helpers/config-problems.js";
import { tempDir } from "../helpers/tmp.js";

/**
 * Issue 10, item 13: a new operator's first mistakes are refused at --check with a message that
 * says what was wrong and how to write it, every problem at once.
 */
const ROOT = join(import.meta.dirname, "../..");
const tmp = tempDir("fnsc-operr-");
afterAll(() => tmp.cleanup());

type Schema = typeof dispatcherConfigSchema | typeof autoscalerConfigSchema;

const problemsOf = (schema: Schema, yaml: string, env: Record<string, string> = {}): string[] =>
  configProblems(() => parseConfig(schema, yaml, "t.yaml", env));

const dispatcherBase = "forgejo: {base_url: 'https://f.example', token: t}\n";
const autoscaler = (forgejo: string, extra = "") => `
dispatcher: { url: "http://127.0.0.1:8080" }
${extra}instances:
  - name: fj
    forgejo: ${forgejo}
    targets:
      - labels: [linux]
`;

describe("namespace.token_file", () => {
  it("a missing file is refused, naming the file and how to create it", () => {
    const p = problemsOf(dispatcherConfigSchema, `${dispatcherBase}namespace: {token_file: ${join(tmp.dir, "nope.json")}}\n`);
    expect(p).toHaveLength(1);
    expect(p[0]).toContain(`namespace.token_file: cannot read ${join(tmp.dir, "nope.json")} (ENOENT)`);
    expect(p[0]).toContain("nsc login");
    expect(p[0]).toContain("forgejo-nsc provision");
  });

  it("a path that cannot be read is refused with the system's reason", () => {
    // chmod 000 does not stop root (CI runs as root): a path through a regular file fails for everyone.
    const f = join(tmp.dir, "a-file");
    writeFileSync(f, "not a directory");
    expect(problemsOf(dispatcherConfigSchema, `${dispatcherBase}namespace: {token_file: ${f}/nsc-token.json}\n`)[0]).toContain(
      `namespace.token_file: cannot read ${f}/nsc-token.json (ENOTDIR)`,
    );
  });

  it("a directory is refused", () => {
    expect(problemsOf(dispatcherConfigSchema, `${dispatcherBase}namespace: {token_file: ${tmp.dir}}\n`)[0]).toMatch(
      /namespace\.token_file: .* is a directory/,
    );
  });

  it("an existing file stays a path: nsc and the Compute API read it themselves", () => {
    const f = join(tmp.dir, "nsc-token.json");
    writeFileSync(f, '{"bearer_token": "nsc-secret-value"}');
    const c = parseConfig(dispatcherConfigSchema, `${dispatcherBase}namespace: {token_file: ${f}}\n`, "t.yaml", {});
    expect(c.namespace.token_file).toBe(f);
  });
});

describe("listen", () => {
  it("a port out of range is refused with the valid range", () => {
    const p = problemsOf(dispatcherConfigSchema, `listen: "127.0.0.1:99999"\n${dispatcherBase}`);
    expect(p).toEqual(['listen: port 99999 is out of range (0-65535); write it like "127.0.0.1:8080"']);
    expect(problemsOf(autoscalerConfigSchema, autoscaler("{base_url: 'https://f.example', token: t}", 'listen: ":70000"\n'))[0]).toContain(
      "port 70000 is out of range",
    );
  });

  it("a bare number gets the expected form", () => {
    const p = problemsOf(dispatcherConfigSchema, `listen: 8080\n${dispatcherBase}`);
    expect(p).toEqual([
      'listen: 8080 is a number; write the address as a string such as "127.0.0.1:8080" (or ":8080" for every interface)',
    ]);
  });
});

describe("URLs", () => {
  it.each([
    [dispatcherConfigSchema, "forgejo: {base_url: 'ftp://f.example', token: t}\n", "forgejo.base_url"],
    [dispatcherConfigSchema, "forgejo: {base_url: 'https://f.example', instance_url: 'file:///etc', token: t}\n", "forgejo.instance_url"],
    [autoscalerConfigSchema, autoscaler("{base_url: 'ftp://f.example', token: t}"), "instances[0].forgejo.base_url"],
    [
      autoscalerConfigSchema,
      autoscaler("{base_url: 'https://f.example', token: t}").replace("http://127.0.0.1:8080", "gopher://x"),
      "dispatcher.url",
    ],
  ] as const)("only http and https (%#)", (schema, yaml, key) => {
    const p = problemsOf(schema, yaml);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(new RegExp(`^${key.replace(/[[\].]/g, "\\$&")}: must be an http\\(s\\) URL`));
  });
});

describe("forgejo.extra_headers", () => {
  it.each([
    [
      dispatcherConfigSchema,
      "forgejo: {base_url: 'https://f.example', token: t, extra_headers: {Authorization: 'Basic x'}}\n",
      "forgejo.extra_headers.Authorization",
    ],
    [
      autoscalerConfigSchema,
      autoscaler("{base_url: 'https://f.example', token: t, extra_headers: {authorization: 'x'}}"),
      "instances[0].forgejo.extra_headers.authorization",
    ],
  ] as const)("Authorization is refused, not silently dropped (%#)", (schema, yaml, key) => {
    const p = problemsOf(schema, yaml);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(new RegExp(`^${key.replace(/[[\].]/g, "\\$&")}: `));
    expect(p[0]).toContain("token_file");
  });

  it("other headers pass", () => {
    const c = parseConfig(
      dispatcherConfigSchema,
      "forgejo: {base_url: 'https://f.example', token: t, extra_headers: {X-Proxy: y}}\n",
      "t.yaml",
      {},
    );
    expect(c.forgejo.extra_headers).toEqual({ "X-Proxy": "y" });
  });
});

describe("every problem at once", () => {
  it("a missing forgejo.token is reported beside other errors", () => {
    const d = problemsOf(dispatcherConfigSchema, "listen: nowhere\nforgejo: {base_url: 'https://f.example', timeout: forever}\n");
    expect(d.some((p) => p.startsWith("forgejo.token: required"))).toBe(true);
    expect(d.some((p) => p.startsWith("forgejo.timeout:"))).toBe(true);
    expect(d.some((p) => p.startsWith("listen:"))).toBe(true);
    expect(problemsOf(dispatcherConfigSchema, "forgejo: {base_url: 'https://f.example'}\n")).toEqual([
      "forgejo.token: required (or set forgejo.token_file)",
    ]);
    const a = problemsOf(autoscalerConfigSchema, autoscaler("{base_url: 'https://f.example', timeout: forever}"));
    expect(a.some((p) => p.startsWith("instances[0].forgejo.token: required"))).toBe(true);
    expect(a.some((p) => p.startsWith("instances[0].forgejo.timeout:"))).toBe(true);
  });
});

describe("env keys", () => {
  it("the key's own message is kept, not 'Invalid key in record'", () => {
    const a = problemsOf(
      autoscalerConfigSchema,
      autoscaler("{base_url: 'https://f.example', token: t}").replace("- labels: [linux]", "- labels: [linux]\n        env: {'1BAD': x}"),
    );
    expect(a).toEqual([
      "instances[0].targets[0].env.1BAD: env keys must be shell variable names (letters, digits and _, not starting with a digit)",
    ]);
    const d = problemsOf(dispatcherConfigSchema, `${dispatcherBase}namespace: {environment: {'A-B': x}}\n`);
    expect(d).toEqual([
      "namespace.environment.A-B: env keys must be shell variable names (letters, digits and _, not starting with a digit)",
    ]);
  });
});

describe("durations", () => {
  it("a bare number gets the expected form", () => {
    const p = problemsOf(dispatcherConfigSchema, "forgejo: {base_url: 'https://f.example', token: t, timeout: 30}\n");
    expect(p).toEqual(['forgejo.timeout: 30 is a number; write a duration with its unit, such as "30s" or "30m"']);
  });
});

describe("environment variables", () => {
  it("an empty variable is reported as set but empty, an absent one as not set", () => {
    const p = problemsOf(dispatcherConfigSchema, "forgejo: {base_url: '${URL}', token: '${PAT}'}\n", { URL: "" });
    expect(p).toContain("forgejo.base_url: environment variable URL is set but empty");
    expect(p).toContain("forgejo.token: environment variable PAT is not set");
  });
});

describe("forgejo-nsc-dispatcher --check", () => {
  const run = promisify(execFile);
  const check = (yaml: string) => {
    const file = join(tmp.dir, `check-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    return run(process.execPath, ["--import", "tsx", join(ROOT, "src/bin/dispatcher.ts"), "--config", file, "--check"], { cwd: ROOT }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  };

  it("fails on a missing namespace.token_file and on an impossible port, naming both", async () => {
    const missing = join(tmp.dir, "gone.json");
    rmSync(missing, { force: true });
    const r = await check(
      `listen: "127.0.0.1:99999"\nforgejo: {base_url: 'https://f.example', token: pat-value-0123}\nnamespace: {token_file: ${missing}}\n`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`namespace.token_file: cannot read ${missing} (ENOENT)`);
    expect(r.stderr).toContain("listen: port 99999 is out of range");
    expect(r.stderr).not.toContain("pat-value-0123");
  });
});

describe("forgejo-nsc-dispatcher start-up", () => {
  it("an unreachable PostgreSQL: exit 1, saying what failed and that it exits, never the password", async () => {
    const file = join(tmp.dir, "unreachable-store.yaml");
    writeFileSync(
      file,
      [
        "forgejo: {base_url: 'https://f.example', token: t}",
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        'dispatcher: {store: "postgres://fnsc:startup-db-pw@127.0.0.1:1/fnsc", postgres: {connect_timeout: 2s}}',
        "namespace: {nsc_binary: /bin/true}",
      ].join("\n"),
    );
    const r = await promisify(execFile)(process.execPath, ["--import", "tsx", join(ROOT, "src/bin/dispatcher.ts"), "--config", file], {
      cwd: ROOT,
    }).then(
      (ok) => ({ code: 0, ...ok }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "forgejo-nsc-dispatcher failed to start: state database postgres://fnsc@127.0.0.1:1/fnsc: cannot connect (ECONNREFUSED)",
    );
    expect(r.stderr).toContain("; exiting (systemd's Restart=on-failure or a container restart policy starts it again)");
    expect(r.stderr).not.toContain("keeps retrying");
    expect(r.stderr + r.stdout).not.toContain("startup-db-pw");
  });
});

describe("env keys that are not plain text", () => {
  it("are quoted and escaped in the message, not echoed into the path", () => {
    const a = problemsOf(
      autoscalerConfigSchema,
      autoscaler("{base_url: 'https://f.example', token: t}").replace("- labels: [linux]", '- labels: [linux]\n        env: {"A\\tB": x}'),
    );
    expect(a).toEqual([
      'instances[0].targets[0].env: key "A\\tB": env keys must be shell variable names (letters, digits and _, not starting with a digit)',
    ]);
  });
});

describe("replicas.store (autoscaler replicas, docs/replicas.md)", () => {
  const okForgejo = "{base_url: 'https://f.example', token: t}";
  it("store_file reads the URL from a file, as dispatcher.store_file does (the NixOS module's postgresUrlFile)", () => {
    const file = join(tmp.dir, "postgres-url");
    writeFileSync(file, "postgres://fnsc:replicas-pw@db.internal:5432/fnsc\n");
    const config = parseConfig(autoscalerConfigSchema, autoscaler(okForgejo, `replicas: { store_file: ${file} }\n`), "t.yaml", {});
    expect(config.replicas?.store).toBe("postgres://fnsc:replicas-pw@db.internal:5432/fnsc");
  });

  it("without a URL, the problem says what to set", () => {
    expect(problemsOf(autoscalerConfigSchema, autoscaler(okForgejo, "replicas: { lease_ttl: 10s }\n"))).toEqual([
      "replicas.store: required: the postgres:// URL of the database the replicas share (or replicas.store_file, a file holding it)",
    ]);
  });
});

describe("missing sections and keys", () => {
  it("a dispatcher config without its forgejo section is a config problem, not a crash", () => {
    // The forgejo.token refinement used to run on the missing section: TypeError "reading 'token'".
    expect(problemsOf(dispatcherConfigSchema, "{}\n")).toEqual(["forgejo: required: a mapping of keys"]);
  });

  it("an empty autoscaler config lists what it needs", () => {
    expect(problemsOf(autoscalerConfigSchema, "{}\n")).toEqual(["instances: required: a list"]);
  });

  it("a missing key says it is required and what kind of value it takes", () => {
    expect(
      problemsOf(
        autoscalerConfigSchema,
        `dispatcher: { url: "http://127.0.0.1:8080" }\ninstances: [{forgejo: {base_url: 'https://f.example', token: t}, targets: [{}]}]\n`,
      ),
    ).toEqual(["instances[0].name: required: a string", "instances[0].targets[0].labels: required: a list"]);
  });
});
