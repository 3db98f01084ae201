import { chmodSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { connect } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Metrics } from "../../src/http/metrics.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import { NscError } from "../../src/namespace/nsc-errors.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

let tmp: { dir: string; cleanup: () => void };
let fake: FakeNsc;
let metrics: Metrics;
let logs: ReturnType<typeof captureLogger>;
let tokenFile: string;

beforeEach(() => {
  tmp = tempDir("fnsc-cli-");
  fake = createFakeNsc(join(tmp.dir, "nsc"));
  metrics = new Metrics({ defaultMetrics: false });
  logs = captureLogger("debug");
  tokenFile = join(tmp.dir, "token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: "nsrt_testtoken" }));
});
afterEach(() => tmp.cleanup());

function cli(over: Partial<ConstructorParameters<typeof NscCli>[0]> = {}): NscCli {
  return new NscCli({ binary: fake.bin, region: "ord4", tokenFile, logger: logs.logger, metrics, env: fake.env, ...over });
}

async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.namespaceCalls.get()).values) out[`${v.labels.api}/${v.labels.command}/${v.labels.outcome}`] = v.value;
  return out;
}

async function rejection(p: Promise<unknown>): Promise<NscError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NscError);
  return err as NscError;
}

describe("NscCli.run", () => {
  it("sends exactly the documented command line, with region, token file and NS_DO_NOT_UPDATE", async () => {
    const { instanceId } = await cli().run({
      image: "code.forgejo.org/forgejo/runner:12",
      name: "nscloud-abc",
      machineType: "4x8",
      durationMs: 20 * 60_000,
      waitTimeoutMs: 5 * 60_000,
      user: "root",
      network: "host",
      volumes: ["cache:nix-linux:/nix:50gb"],
      env: { A: "1", URL: "https://h/?a=b" },
      labels: { "forgejo-nsc.runner": "nscloud-abc", "forgejo-nsc.owner": "default" },
      purpose: "forgejo runner nscloud-abc",
      command: ["/bin/sh", "-c", "echo 'hi' -- --not-a-flag"],
    });
    const [call] = fake.calls("run");
    expect(call!.argv).toEqual([
      "--region",
      "ord4",
      "run",
      "-o",
      "json",
      "--image",
      "code.forgejo.org/forgejo/runner:12",
      "--wait_timeout",
      "300s",
      "--name",
      "nscloud-abc",
      "--machine_type",
      "4x8",
      "--duration",
      "1200s",
      "--user",
      "root",
      "--network",
      "host",
      "--volume",
      "cache:nix-linux:/nix:50gb",
      "-e",
      "A=1",
      "-e",
      "URL=https://h/?a=b",
      "--label",
      "forgejo-nsc.runner=nscloud-abc",
      "--label",
      "forgejo-nsc.owner=default",
      "--documented_purpose",
      "forgejo runner nscloud-abc",
      "--",
      "/bin/sh",
      "-c",
      "echo 'hi' -- --not-a-flag",
    ]);
    expect(call!.env).toMatchObject({ NS_DO_NOT_UPDATE: "1", NSC_TOKEN_FILE: tokenFile });
    const [inst] = fake.instances();
    expect(inst).toMatchObject({
      id: instanceId,
      region: "ord4",
      env: { A: "1", URL: "https://h/?a=b" },
      args: ["/bin/sh", "-c", "echo 'hi' -- --not-a-flag"],
      name: "nscloud-abc",
      user: "root",
      network: "host",
    });
    expect(await counts()).toEqual({ "nsc/run/ok": 1 });
  });

  it("omits --region when none is configured, and takes cluster_id from old nsc", async () => {
    fake.setKnobs({ omitInstanceId: true });
    const { instanceId } = await cli({ region: undefined }).run({ image: "i", command: ["true"] });
    expect(fake.instances({ region: "eu" })[0]!.id).toBe(instanceId);
    expect(fake.calls("run")[0]!.argv.slice(0, 2)).toEqual(["run", "-o"]);
  });

  it("refuses env and label values nsc would misparse instead of corrupting them", async () => {
    const envs: Record<string, string>[] = [{ U: "https://h/?a=b,c" }, { Q: 'x="y"' }, { T: '"quoted"' }];
    for (const env of envs) {
      const err = await rejection(cli().run({ image: "i", env, command: ["true"] }));
      expect(err.kind).toBe("invalid");
      expect(err.message).toContain("bootstrap script");
    }
    await rejection(cli().run({ image: "i", labels: { l: "a=b,c" }, command: ["true"] }));
    await rejection(cli().run({ image: "i", volumes: ["cache:a,b:/x"], command: ["true"] }));
    expect(fake.calls("run")).toEqual([]);
  });

  it("turns a capacity failure into a capacity NscError that says what to do", async () => {
    fake.setKnobs({ runCapacity: 1 });
    const err = await rejection(cli().run({ image: "i", command: ["true"] }));
    expect(err.kind).toBe("capacity");
    expect(err.message).toContain("ran out of capacity");
    expect(err.message).toContain("smaller machine_type");
    expect(err.detail).not.toContain("\n");
    expect(await counts()).toEqual({ "nsc/run/capacity": 1 });
  });

  it("reports a wait timeout with the instance it left behind", async () => {
    fake.setKnobs({ runNeverReady: 1, neverReadyDelayMs: 0 });
    const err = await rejection(cli().run({ image: "i", waitTimeoutMs: 60_000, command: ["true"] }));
    expect(err.kind).toBe("timeout");
    expect(err.instanceId).toBe(fake.instances()[0]!.id);
    expect(err.message).toContain("namespace.wait_timeout");
  });

  it("kills nsc run when the signal aborts, leaving a timeout error", async () => {
    fake.setKnobs({ createDelayMs: 30_000 });
    const ac = new AbortController();
    const p = cli().run({ image: "i", command: ["true"], signal: ac.signal });
    await waitFor(() => fake.instances().length === 1, { what: "instance recorded" });
    ac.abort();
    const err = await rejection(p);
    expect(err.kind).toBe("timeout");
    expect(err.message).toContain("cancelled");
  });

  it("says how to authenticate when nsc is not logged in", async () => {
    fake.setKnobs({ auth: "unauthenticated" });
    const err = await rejection(cli().run({ image: "i", command: ["true"] }));
    expect(err.kind).toBe("auth");
    expect(err.message).toContain("no credentials found");
    expect(err.message).toContain("namespace.token_file");
    fake.setKnobs({ auth: null });
    writeFileSync(tokenFile, "nsrt_raw_not_json");
    const raw = await rejection(cli().list({}));
    expect(raw.kind).toBe("auth");
    expect(raw.message).toContain("not logged in");
  });

  it("names the setting to fix when the binary is missing", async () => {
    const err = await rejection(cli({ binary: join(tmp.dir, "no-such-nsc") }).list({}));
    expect(err.kind).toBe("invalid");
    expect(err.message).toContain("namespace.nsc_binary");
  });
});

describe("NscCli secrets", () => {
  it("keeps env values out of errors and log lines even when nsc echoes them", async () => {
    // An nsc that echoes its whole command line in its error report, as pflag does for a bad flag value.
    const echoing = join(tmp.dir, "echo-nsc");
    writeFileSync(
      echoing,
      '#!/bin/sh\nprintf \'\\n========================================\\nFailed: invalid argument "%s" for flag\\n========================================\\n\' "$*" >&2\nexit 1\n',
    );
    chmodSync(echoing, 0o755);
    const secret = "regtok-Sup3rS3cret-0123456789";
    const err = await rejection(
      cli({ binary: echoing }).run({
        image: "i",
        env: { FORGEJO_RUNNER_TOKEN: secret, OTHER: "visible-only-as-value-x" },
        command: ["true"],
      }),
    );
    expect(err.message).not.toContain(secret);
    expect(err.detail).not.toContain(secret);
    expect(err.message).toContain("[redacted]");
    expect(logs.text()).not.toContain(secret);
    expect(logs.text()).not.toContain("visible-only-as-value-x");
  });

  it("logs flag names but no values on success", async () => {
    const secret = "eph-runner-token-abcdef0123456789";
    await cli().run({
      image: "i",
      env: { FORGEJO_RUNNER_TOKEN: secret },
      labels: { a: "b" },
      command: ["/bin/sh", "-c", "script-body-text"],
    });
    const text = logs.text();
    expect(text).toContain('"nsc":"run"');
    expect(text).toContain('"-e"');
    expect(text).not.toContain(secret);
    expect(text).not.toContain("script-body-text");
  });
});

describe("NscCli.list / describe / destroy", () => {
  it("lists with --all and label filters, maps null to []", async () => {
    expect(await cli().list({ "forgejo-nsc.owner": "default" })).toEqual([]);
    const { instanceId } = await cli().run({
      image: "i",
      labels: { "forgejo-nsc.owner": "default", "forgejo-nsc.runner": "r1" },
      command: ["true"],
    });
    await cli().run({ image: "i", labels: { "forgejo-nsc.owner": "other" }, command: ["true"] });
    const list = await cli().list({ "forgejo-nsc.owner": "default" });
    expect(list).toEqual([
      { instanceId, labels: { "forgejo-nsc.owner": "default", "forgejo-nsc.runner": "r1" }, createdAt: expect.any(String) as string },
    ]);
    expect(fake.calls("list")[1]!.argv).toEqual([
      "--region",
      "ord4",
      "list",
      "--all",
      "-o",
      "json",
      "--label",
      "forgejo-nsc.owner=default",
    ]);
  });

  it("describes running as running, and gone in both wordings; other failures throw", async () => {
    const { instanceId } = await cli().run({ image: "i", command: ["true"] });
    expect((await cli().describe(instanceId)).state).toBe("running");
    fake.setKnobs({ transient: { describe: 1 } });
    const err = await rejection(cli().describe(instanceId));
    expect(err.kind).toBe("transient");
    expect(err.message).toContain("invocation error");
    fake.exitContainer(instanceId);
    expect(await cli().describe(instanceId)).toEqual({ state: "gone" });
    fake.setKnobs({ describeWording: "raw" });
    expect(await cli().describe(instanceId)).toEqual({ state: "gone" });
    expect(await cli().describe("zzzzzzzzzzzzz")).toEqual({ state: "gone" });
    expect(await counts()).toMatchObject({ "nsc/describe/ok": 1, "nsc/describe/transient": 1, "nsc/describe/gone": 3 });
  });

  it("destroys with --force; an instance already gone counts as destroyed; transient failures throw", async () => {
    const { instanceId } = await cli().run({ image: "i", command: ["true"] });
    fake.setKnobs({ transient: { destroy: 1 } });
    expect((await rejection(cli().destroy(instanceId))).kind).toBe("transient");
    await cli().destroy(instanceId);
    expect(fake.instances()).toEqual([]);
    await cli().destroy(instanceId);
    fake.setKnobs({ describeWording: "raw" });
    await cli().destroy(instanceId);
    expect(fake.calls("destroy").every((c) => c.argv.includes("--force"))).toBe(true);
    await expect(cli().destroy("bad id; rm")).rejects.toThrow(/invalid instance ID/);
  });
});

describe("NscCli.create / ssh / portForward / proxy", () => {
  it("creates with cidfile and output_json_to and returns the record", async () => {
    const { instanceId, record } = await cli().create({
      machineType: "windows/amd64:8x16",
      durationMs: 3_600_000,
      labels: { "forgejo-nsc.runner": "w1" },
      purpose: "p",
      waitTimeoutMs: 360_000,
    });
    expect(record.cluster_id).toBe(instanceId);
    expect(record.service_state?.find((s) => s.name === "winrm")?.credentials?.username).toBe("runneradmin");
    const argv = fake.calls("create")[0]!.argv;
    expect(argv).toEqual(
      expect.arrayContaining([
        "--machine_type",
        "windows/amd64:8x16",
        "--duration",
        "3600s",
        "--label",
        "forgejo-nsc.runner=w1",
        "--purpose",
        "p",
        "--wait_timeout",
        "360s",
        "-o",
        "json",
      ]),
    );
    expect(argv).toContain("--cidfile");
    expect(argv).toContain("--output_json_to");
  });

  it("bounds a create that retries capacity forever", async () => {
    fake.setKnobs({ createCapacity: true });
    const err = await rejection(
      cli().create({ machineType: "macos/arm64:6x14", bare: true, selectors: ["macos.version=26.x"], timeoutMs: 400 }),
    );
    expect(err.kind).toBe("timeout");
    expect(err.instanceId).toBeUndefined();
    expect(fake.instances()).toEqual([]);
  });

  it("reports the instance a failed create left behind", async () => {
    fake.setKnobs({ createNeverReady: 1, neverReadyDelayMs: 0 });
    const err = await rejection(cli().create({ machineType: "linux/amd64:2x4" }));
    expect(err.instanceId).toBe(fake.instances()[0]!.id);
  });

  it("runs ssh with stdin and surfaces a remote failure", async () => {
    const { instanceId } = await cli().create({ machineType: "linux/amd64:2x4" });
    fake.setKnobs({ ssh: { mode: "exec" } });
    const out = await cli().ssh(instanceId, "/bin/sh", { input: "echo $((6*7))" });
    expect(out.stdout).toBe("42\n");
    expect(fake.instances()[0]!.ssh_sessions[0]).toMatchObject({ command: "/bin/sh", stdin: "echo $((6*7))" });
    const err = await rejection(cli().ssh(instanceId, ["exit", "4"]));
    expect(err.message).toContain("Process exited with status 4");
  });

  it("opens a port-forward tunnel and closes it", async () => {
    const echo = createServer((s: Socket) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    fake.setKnobs({ forward: { "5985": `127.0.0.1:${(echo.address() as AddressInfo).port}` } });
    const { instanceId } = await cli().create({ machineType: "windows/amd64:8x16" });
    const tunnel = await cli().portForward(instanceId, 5985);
    try {
      expect(tunnel.host).toBe("127.0.0.1");
      const sock = connect(tunnel.port, tunnel.host);
      let got = "";
      sock.on("data", (d) => (got += d.toString()));
      sock.write("hello");
      await waitFor(() => got === "hello", { what: "data through the tunnel" });
      sock.destroy();
    } finally {
      await tunnel.close();
      echo.close();
    }
    const call = fake.calls("instance port-forward")[0]!;
    expect(call.argv).toEqual(["--region", "ord4", "instance", "port-forward", instanceId, "--target_port", "5985"]);
    expect(call.exitCode).toBeNull();
    await expect(cli().portForward("zzzzzzzzzzzzz", 5985)).rejects.toThrow(/does not exist/);
  });

  it("starts a proxy and returns its endpoint and credentials", async () => {
    fake.setKnobs({ windowsCredentials: { username: "Administrator", password: "pw" } });
    const { instanceId } = await cli().create({ machineType: "windows/amd64:8x16" });
    const proxy = await cli().proxy(instanceId, "winrm");
    await proxy.close();
    expect(proxy.credentials).toEqual({ username: "Administrator", password: "pw" });
    expect(proxy.port).toBeGreaterThan(0);
    fake.setKnobs({ windowsWinrm: false });
    const err = await rejection(cli().proxy(instanceId, "winrm"));
    expect(err.message).toContain('does not have service "winrm"');
  });
});
