import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { connect } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { fakeNscSandbox } from "../helpers/fake-nsc-sandbox.js";

// The fake itself is a contract (contracts/nsc.md §13); other engineers' tests rely on it.

const sandbox = fakeNscSandbox("fnsc-fake-");

function nsc(args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  return execa(sandbox.nsc.bin, args, {
    env: { ...sandbox.nsc.env, ...opts.env },
    reject: false,
    stripFinalNewline: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" as const }),
    cwd: sandbox.dir,
  });
}

async function runOne(extra: string[] = [], region = "ord4"): Promise<string> {
  const r = await nsc(["--region", region, "run", "-o", "json", "--image", "img", ...extra, "--", "/bin/true"]);
  expect(r.exitCode, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { instance_id: string }).instance_id;
}

const FOOTER = "See https://namespace.so/docs for more help.";

describe("process and flag handling (§13.1)", () => {
  it("accepts global flags before and after the command, --flag=value and -ojson", async () => {
    const a = await nsc(["--region=ord4", "run", "-ojson", "--image=img", "--duration", "2d", "--", "x"]);
    expect(a.exitCode, a.stderr).toBe(0);
    const b = await nsc(["run", "--image", "img", "--region", "ord4", "-o", "json"]);
    expect(b.exitCode, b.stderr).toBe(0);
    const [i1] = sandbox.nsc.instances({ region: "ord4" });
    expect(Date.parse(i1!.deadline!) - Date.parse(i1!.created_at)).toBe(2 * 86_400_000);
    expect(sandbox.nsc.calls("run").map((c) => c.region)).toEqual(["ord4", "ord4"]);
  });

  it("reports unknown flags, commands and wrong arg counts on stderr in the §1.6 shape, exit 1", async () => {
    for (const [args, text] of [
      [["run", "--bogus"], "Failed: unknown flag: --bogus"],
      [["frobnicate"], 'Failed: unknown command "frobnicate" for "nsc"'],
      [["describe", "a", "b"], "Failed: accepts 1 arg(s), received 2"],
      [["run", "--duration", "5x", "--image", "i"], 'unknown unit "x"'],
      [["run"], "Failed: --image is required"],
    ] as const) {
      const r = await nsc([...args]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(text);
      expect(r.stderr).toContain(FOOTER);
    }
  });

  it("applies pflag's map rules to -e and --label", async () => {
    const id = await runOne(["-e", 'Q="quoted"', "-e", "PAIR=A=1,B=2", "-e", "PLAIN=x y", "--label", "k=v"]);
    const inst = sandbox.nsc.instances().find((i) => i.id === id)!;
    // One "=": quotes trimmed from both ends of the whole argument (so only a trailing one here).
    // Two or more: a CSV record of pairs.
    expect(inst.env).toEqual({ Q: '"quoted', PAIR: "A=1", B: "2", PLAIN: "x y" });
    expect(inst.labels).toEqual({ k: "v" });

    const bad = await nsc(["run", "--image", "i", "-e", "URL=https://h/?a=b,c"]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr.replace(/\s+/g, " ")).toContain("c must be formatted as key=value");
    const noEq = await nsc(["run", "--image", "i", "--label", "novalue"]);
    expect(noEq.stderr).toContain("novalue must be formatted as key=value");
    const stray = await nsc(["run", "--image", "i", "-e", 'X=a"b=c']);
    expect(stray.stderr.replace(/\s+/g, " ")).toContain('bare " in non-quoted-field');
  });

  it("splits slice flags on commas and validates volumes", async () => {
    const id = await runOne(["--volume", "cache:a:/a:1gb,persistent:b:/b", "--volume", "CACHE:c:/c:512mb"]);
    const inst = sandbox.nsc.instances().find((i) => i.id === id)!;
    expect(inst.volumes).toEqual([
      { kind: "cache", tag: "a", mount_point: "/a", size_mb: 1024 },
      { kind: "persistent", tag: "b", mount_point: "/b" },
      { kind: "cache", tag: "c", mount_point: "/c", size_mb: 512 },
    ]);
    for (const [v, text] of [
      ["cache:a", "failed to parse volume definition"],
      ["cache::/a", 'a volume "tag" is required'],
      ["tmp:a:/a", 'a volume "kind" of "cache" or "persistent" is required'],
      ["cache:a:/a:lots", "failed to parse size"],
    ]) {
      const r = await nsc(["run", "--image", "i", "--volume", v!]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(text);
    }
  });

  it("records argv, selected env and cwd of every invocation", async () => {
    await nsc(["list", "-o", "json"], { env: { NSC_TOKEN_FILE: writeToken(), NS_DO_NOT_UPDATE: "1" } });
    const [call] = sandbox.nsc.calls("list");
    expect(call).toMatchObject({ argv: ["list", "-o", "json"], cwd: sandbox.dir, exitCode: 0, stdout: "null\n", region: "eu" });
    expect(call!.env.NS_DO_NOT_UPDATE).toBe("1");
    expect(call!.env.NSC_TOKEN_FILE).toContain("token.json");
  });
});

function writeToken(content = '{"bearer_token":"nsrt_x"}'): string {
  const p = join(sandbox.dir, "token.json");
  writeFileSync(p, content);
  return p;
}

describe("run (§13.2)", () => {
  it("prints the §2.4 JSON, or the five plain lines, and omits instance_id for old nsc", async () => {
    const r = await nsc(["run", "-o", "json", "--image", "i"]);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(j)).toEqual(["cluster_id", "instance_id", "cluster_url", "container"]);
    expect(j.cluster_id).toMatch(/^[0-9a-v]{13}$/);
    expect(r.stdout).toBe(JSON.stringify(j, null, 2) + "\n");

    const plain = await nsc(["run", "--image", "i"]);
    expect(plain.stdout.split("\n")).toHaveLength(6);
    expect(plain.stdout).toMatch(
      /^\n {2}Created new ephemeral environment! ID: [0-9a-v]{13}\n\n {2}More at: https:\/\/cloud\.namespace\.so\/.+\n\n$/,
    );

    sandbox.nsc.setKnobs({ omitInstanceId: true });
    const old = JSON.parse((await nsc(["run", "-o", "json", "--image", "i"])).stdout) as Record<string, unknown>;
    expect(old.instance_id).toBeUndefined();
    expect(old.cluster_id).toBeTruthy();
  });

  it("keeps state consistent under concurrent invocations", async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => nsc(["run", "-o", "json", "--image", "i"])));
    expect(results.map((r) => r.exitCode)).toEqual(Array(10).fill(0));
    const ids = results.map((r) => (JSON.parse(r.stdout) as { instance_id: string }).instance_id);
    expect(new Set(ids).size).toBe(10);
    expect(
      sandbox.nsc
        .instances()
        .map((i) => i.id)
        .sort(),
    ).toEqual([...ids].sort());
  });

  it("fails with capacity for the next N runs only, creating nothing", async () => {
    sandbox.nsc.setKnobs({ runCapacity: 1 });
    const r = await nsc(["run", "--image", "i"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("Failed: ran out of capacity:");
    expect(r.stderr).not.toContain("========");
    expect(sandbox.nsc.instances()).toEqual([]);
    await runOne();
    expect(sandbox.nsc.state().knobs.runCapacity).toBe(0);
  });

  it("leaves a never-ready instance behind, naming it (or not, in the deadline wording)", async () => {
    sandbox.nsc.setKnobs({ runNeverReady: 2, neverReadyDelayMs: 0 });
    const r = await nsc(["--region", "ord4", "run", "--image", "i", "--wait_timeout", "5m"]);
    expect(r.exitCode).toBe(1);
    const [inst] = sandbox.nsc.instances();
    expect(r.stderr.replace(/\s+/g, " ")).toContain(`cluster id: ${inst!.id}`);
    sandbox.nsc.setKnobs({ neverReadyWording: "deadline" });
    const d = await nsc(["--region", "ord4", "run", "--image", "i"]);
    expect(d.stderr).toContain("context deadline exceeded");
    expect(d.stderr).not.toContain("cluster id");
    expect(sandbox.nsc.instances()).toHaveLength(2);
  });

  it("waits the full --wait_timeout by default before failing a never-ready run", async () => {
    sandbox.nsc.setKnobs({ runNeverReady: true });
    const started = Date.now();
    const r = await nsc(["run", "--image", "i", "--wait_timeout", "300ms"]);
    expect(r.exitCode).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("reports a container that exits at once as a destroyed cluster", async () => {
    sandbox.nsc.setKnobs({ runExitImmediately: 1 });
    const r = await nsc(["run", "--image", "i"]);
    expect(r.exitCode).toBe(1);
    const [inst] = sandbox.nsc.instances({ includeDestroyed: true });
    expect(r.stderr).toContain(`cluster is destroyed (cluster id: ${inst!.id})`);
    expect(inst!.destroyed_at).toBeTruthy();
  });

  it("leaves the instance behind when killed during creation", async () => {
    sandbox.nsc.setKnobs({ createDelayMs: 30_000 });
    const child = execa(sandbox.nsc.bin, ["run", "--image", "i", "--label", "r=1"], { env: sandbox.nsc.env, reject: false });
    await waitFor(() => sandbox.nsc.instances().length === 1, { what: "instance recorded before the delay" });
    child.kill("SIGTERM");
    const r = await child;
    expect(r.signal).toBe("SIGTERM");
    expect(sandbox.nsc.instances()[0]!.labels).toEqual({ r: "1" });
    expect(sandbox.nsc.calls("run")[0]!.exitCode).toBeNull();
  });
});

describe("lifecycle, describe, destroy, list (§13.2–13.4, §13.6)", () => {
  it("destroys the instance when its container exits, and at the deadline", async () => {
    const a = await runOne();
    const b = await runOne(["--duration", "10m"]);
    sandbox.nsc.exitContainer(a, 0);
    expect(sandbox.nsc.instances().map((i) => i.id)).toEqual([b]);
    sandbox.nsc.advanceTime(10 * 60_000);
    expect(sandbox.nsc.instances()).toEqual([]);
    const gone = sandbox.nsc.instances({ includeDestroyed: true });
    expect(gone.map((i) => i.destroy_reason).sort()).toEqual(["container exited", "deadline"]);
  });

  it("describes running instances and fails for destroyed and unknown ones, in both wordings", async () => {
    const id = await runOne();
    const ok = await nsc(["--region", "ord4", "describe", "-o", "json", id]);
    expect(ok.exitCode).toBe(0);
    const summary = JSON.parse(ok.stdout) as { resource: string; per_resource?: Record<string, { container: { ready: boolean }[] }> }[];
    const containers = summary.find((s) => s.resource === "nsc/containers")!;
    expect(Object.values(containers.per_resource!)[0]!.container[0]!.ready).toBe(true);

    const otherRegion = await nsc(["--region", "eu", "describe", id]);
    expect(otherRegion.stderr).toContain(`Failed: "${id}" does not exist.`);

    sandbox.nsc.exitContainer(id);
    const gone = await nsc(["--region", "ord4", "describe", id]);
    expect(gone.exitCode).toBe(1);
    expect(gone.stdout).toBe("");
    expect(gone.stderr).toContain(`Failed: "${id}" is no longer running.`);

    sandbox.nsc.setKnobs({ describeWording: "raw" });
    const raw = await nsc(["--region", "ord4", "describe", id]);
    expect(raw.stderr.replace(/\s+/g, " ")).toContain(`instance "${id}" was destroyed (FailedPrecondition).`);
    const rawUnknown = await nsc(["--region", "ord4", "describe", "zzzzzzzzzzzzz"]);
    expect(rawUnknown.stderr).toContain('instance "zzzzzzzzzzzzz" not found');
  });

  it("fails describe, list and destroy transiently for the next N calls", async () => {
    const id = await runOne();
    sandbox.nsc.setKnobs({ transient: { describe: 1, list: 1, destroy: 1 } });
    for (const args of [
      ["describe", id],
      ["list", "--all"],
      ["destroy", "--force", id],
    ]) {
      const r = await nsc(["--region", "ord4", ...args]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("invocation error:");
      expect(r.stderr).toContain("unavailable");
    }
    for (const args of [
      ["describe", id],
      ["list", "--all"],
      ["destroy", "--force", id],
    ]) {
      expect((await nsc(["--region", "ord4", ...args])).exitCode).toBe(0);
    }
  });

  it("destroys only with --force, stops at the first unknown ID, and says so for gone ones", async () => {
    const a = await runOne();
    const b = await runOne();
    const noForce = await nsc(["--region", "ord4", "destroy", a]);
    expect(noForce.exitCode).toBe(0);
    expect(sandbox.nsc.instances()).toHaveLength(2);
    expect(sandbox.nsc.calls("destroy")[0]!.note).toContain("without --force");

    const r = await nsc(["--region", "ord4", "destroy", "--force", a, "nope0000nope0", b]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('"nope0000nope0" does not exist.');
    expect(sandbox.nsc.instances().map((i) => i.id)).toEqual([b]);
    const again = await nsc(["--region", "ord4", "destroy", "--force", a]);
    expect(again.stderr).toContain(`"${a}" does not exist.`);
  });

  it("lists only with --all for run instances, filters by labels, sorts keys, prints null when empty", async () => {
    expect((await nsc(["--region", "ord4", "list", "-o", "json", "--all"])).stdout).toBe("null\n");
    const a = await runOne(["--label", "runner=a", "--label", "owner=x"]);
    await runOne(["--label", "runner=b", "--label", "owner=x"]);
    expect((await nsc(["--region", "ord4", "list", "-o", "json"])).stdout).toBe("null\n");
    const r = await nsc(["--region", "ord4", "list", "-o", "json", "--all", "--label", "runner=a", "--label", "owner=x"]);
    const list = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(list.map((e) => e.cluster_id)).toEqual([a]);
    expect(Object.keys(list[0]!)).toEqual([...Object.keys(list[0]!)].sort());
    expect(list[0]!.labels).toEqual({ runner: "a", owner: "x" });
    sandbox.nsc.setKnobs({ runNonManual: false });
    await runOne();
    expect(JSON.parse((await nsc(["--region", "ord4", "list", "-o", "json"])).stdout)).toHaveLength(1);
  });

  it("includes destroyed instances in instance history", async () => {
    const a = await runOne();
    sandbox.nsc.exitContainer(a);
    const r = await nsc(["--region", "ord4", "instance", "history", "--all", "-o", "json"]);
    const rows = JSON.parse(r.stdout) as { cluster_id: string; destroyed_at?: string }[];
    expect(rows[0]).toMatchObject({ cluster_id: a });
    expect(rows[0]!.destroyed_at).toBeTruthy();
  });
});

describe("create (§13.5)", () => {
  it("writes the cidfile without a newline and the instance record with service credentials", async () => {
    const cid = join(sandbox.dir, "cid");
    const out = join(sandbox.dir, "out.json");
    const r = await nsc([
      "--region",
      "ord4",
      "create",
      "--machine_type",
      "windows/amd64:8x16",
      "--duration",
      "1h",
      "--cidfile",
      cid,
      "--output_json_to",
      out,
      "-o",
      "json",
      "--wait_timeout",
      "6m",
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const id = readFileSync(cid, "utf8");
    expect(id).toMatch(/^[0-9a-v]{13}$/);
    expect(JSON.parse(r.stdout)).toMatchObject({ cluster_id: id, instance_id: id });
    const rec = JSON.parse(readFileSync(out, "utf8")) as {
      cluster_id: string;
      instance_id?: string;
      label: unknown;
      service_state: { name: string; credentials?: unknown }[];
    };
    expect(rec.cluster_id).toBe(id);
    expect(rec.instance_id).toBeUndefined();
    expect(rec.label).toEqual([{ name: "nsc.source", value: "nsc" }]);
    expect(rec.service_state.map((s) => s.name).sort()).toEqual(["rdp", "ssh", "winrm"]);
    expect(rec.service_state.find((s) => s.name === "winrm")!.credentials).toMatchObject({ username: "runneradmin" });

    sandbox.nsc.setKnobs({ windowsWinrm: false });
    await nsc(["--region", "ord4", "create", "--machine_type", "windows/amd64:8x16", "--output_json_to", out]);
    const rec2 = JSON.parse(readFileSync(out, "utf8")) as { service_state: { name: string }[] };
    expect(rec2.service_state.map((s) => s.name).sort()).toEqual(["rdp", "ssh"]);
  });

  it("validates selectors, --output_json_to with no wait, and warns about --output_to", async () => {
    expect((await nsc(["create", "--selectors", "macos.version=26.x,bad"])).stderr).toContain('invalid selector "bad": expected key=value');
    expect((await nsc(["create", "--output_json_to", join(sandbox.dir, "o"), "--wait_timeout", "0"])).stderr).toContain(
      "no instance information available with no wait timeout",
    );
    const r = await nsc([
      "create",
      "--machine_type",
      "macos/arm64:6x14",
      "--bare",
      "--selectors",
      "macos.version=26.x,image.with=xcode-26",
      "--output_to",
      join(sandbox.dir, "c"),
    ]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("Flag --output_to has been deprecated, use cidfile instead");
    const inst = sandbox.nsc.instances()[0]!;
    expect(inst.selectors).toEqual(["macos.version=26.x", "image.with=xcode-26"]);
    expect(inst.features).toContain("EXP_DISABLE_KUBERNETES");
  });

  it("blocks on capacity until killed, creating nothing and writing no cidfile", async () => {
    sandbox.nsc.setKnobs({ createCapacity: true, createRetryLogMs: 20 });
    const cid = join(sandbox.dir, "cid");
    const child = execa(sandbox.nsc.bin, ["create", "--log_actions", "--cidfile", cid], { env: sandbox.nsc.env, reject: false });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    await waitFor(() => err.includes("ran out of capacity"), { what: "capacity retries" });
    child.kill("SIGKILL");
    await child;
    expect(sandbox.nsc.instances()).toEqual([]);
    expect(() => statSync(cid)).toThrow();
  });
});

describe("ssh, port-forward, proxy (§13.7, §13.8)", () => {
  async function createdInstance(machine = "windows/amd64:8x16"): Promise<string> {
    const r = await nsc(["--region", "ord4", "create", "--machine_type", machine, "-o", "json"]);
    return (JSON.parse(r.stdout) as { instance_id: string }).instance_id;
  }

  it("records the command and stdin, echoes canned output, and maps a remote failure to exit 1", async () => {
    const id = await createdInstance("linux/amd64:2x4");
    sandbox.nsc.setKnobs({ ssh: { stdout: "remote out\n", exitCode: 0 } });
    const ok = await nsc(["--region", "ord4", "ssh", id, "-T", "--", "/bin/bash", "-l"], { input: "echo from stdin\n" });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toBe("remote out\n");
    expect(sandbox.nsc.instances()[0]!.ssh_sessions).toMatchObject([{ command: "/bin/bash -l", stdin: "echo from stdin\n" }]);

    sandbox.nsc.setKnobs({ ssh: { exitCode: 3 } });
    const bad = await nsc(["--region", "ord4", "ssh", id, "--", "false"]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain("Failed: Process exited with status 3");

    sandbox.nsc.setKnobs({ ssh: { mode: "exec" } });
    const exec = await nsc(["--region", "ord4", "ssh", id, "--", "cat"], { input: "piped through" });
    expect(exec.stdout).toBe("piped through");

    sandbox.nsc.setKnobs({ sshService: false, ssh: null });
    const noSsh = await nsc(["--region", "ord4", "ssh", id, "--", "true"]);
    expect(noSsh.stderr).toContain("instance does not have ssh");
  });

  it("port-forward listens on loopback, prints Listening on, and pipes to the configured target", async () => {
    const echo = createServer((s: Socket) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    const echoPort = (echo.address() as AddressInfo).port;
    const id = await createdInstance();
    sandbox.nsc.setKnobs({ forward: { "5985": `127.0.0.1:${echoPort}` } });
    expect((await nsc(["--region", "ord4", "instance", "port-forward", id])).stderr).toContain("--target_port is required");
    const child = execa(sandbox.nsc.bin, ["--region", "ord4", "instance", "port-forward", id, "--target_port", "5985"], {
      env: sandbox.nsc.env,
      reject: false,
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    try {
      const m = await waitFor(() => /Listening on 127\.0\.0\.1:(\d+)\n/.exec(out), { what: "Listening on" });
      const sock = connect(Number(m[1]), "127.0.0.1");
      let got = "";
      sock.on("data", (d) => (got += d.toString()));
      sock.write("ping");
      await waitFor(() => got === "ping", { what: "echo through the tunnel" });
      sock.destroy();
      expect(sandbox.nsc.instances()[0]!.port_forwards[0]).toMatchObject({ target_port: 5985, local_port: Number(m[1]) });
    } finally {
      child.kill("SIGTERM");
      await child;
      echo.close();
    }
  });

  it("proxy prints the endpoint and credentials as one JSON line, and fails for a missing service", async () => {
    const id = await createdInstance();
    sandbox.nsc.setKnobs({ windowsCredentials: { username: "u", password: "p@ss" } });
    const other = await createdInstance();
    const child = execa(sandbox.nsc.bin, ["--region", "ord4", "instance", "proxy", other, "-s", "rdp", "-o", "json", "--once"], {
      env: sandbox.nsc.env,
      reject: false,
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const line = await waitFor(() => out.split("\n").find((l) => l.startsWith("{")), { what: "proxy JSON" });
    const j = JSON.parse(line) as { endpoint: string; rdp: { credentials: unknown } };
    expect(j.rdp.credentials).toEqual({ username: "u", password: "p@ss" });
    const [, port] = j.endpoint.split(":");
    const s = connect(Number(port), "127.0.0.1");
    await new Promise((r) => s.on("close", r));
    expect((await child).exitCode).toBe(0);

    sandbox.nsc.setKnobs({ windowsWinrm: false });
    const missing = await nsc(["--region", "ord4", "instance", "proxy", id, "-s", "winrm", "-o", "json"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('Failed: instance does not have service "winrm"');
  });
});

describe("auth and tokens (§13.1, §13.9)", () => {
  it("rejects a token file that is not JSON, and emulates unauthenticated and expired tokens", async () => {
    const raw = await nsc(["list"], { env: { NSC_TOKEN_FILE: writeToken("nsrt_rawtoken") } });
    expect(raw.exitCode).toBe(1);
    expect(raw.stderr).toContain("not logged in");
    sandbox.nsc.setKnobs({ auth: "unauthenticated" });
    expect((await nsc(["list"])).stderr).toContain("Failed: no credentials found. We got:");
    sandbox.nsc.setKnobs({ auth: "expired" });
    expect((await nsc(["list"])).stderr).toContain("login token expired");
    expect((await nsc(["auth", "check-login"])).exitCode).toBe(1);
    sandbox.nsc.setKnobs({ auth: null, tokenValidForMs: 60_000 });
    expect((await nsc(["auth", "check-login", "--duration", "30s"])).exitCode).toBe(0);
    expect((await nsc(["auth", "check-login", "--duration", "5m"])).exitCode).toBe(1);
  });

  it("token create writes {bearer_token} with mode 0600; generate-dev-token writes the raw token", async () => {
    mkdirSync(join(sandbox.dir, "out"));
    const file = join(sandbox.dir, "out", "nsc-token.json");
    const r = await nsc([
      "token",
      "create",
      "--name",
      "forgejo-nsc",
      "--grant",
      '{"resource_type":"instance","resource_id":"*","actions":["create"]}',
      "--expires_in",
      "365d",
      "--token_file",
      file,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const tok = JSON.parse(readFileSync(file, "utf8")) as { bearer_token: string };
    expect(tok.bearer_token).toMatch(/^nsrt_fake/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(sandbox.nsc.state().tokens[0]).toMatchObject({ name: "forgejo-nsc", token: tok.bearer_token });

    const dev = join(sandbox.dir, "out", "dev");
    expect((await nsc(["auth", "generate-dev-token", "--output_to", dev])).exitCode).toBe(0);
    expect(readFileSync(dev, "utf8")).toMatch(/^nsct_fake_[0-9a-f]+$/);
  });
});
