import { connect } from "node:net";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER, LaunchError } from "../../src/namespace/launcher.js";
import type { LaunchSpec } from "../../src/namespace/launcher.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import { WindowsLauncher, windowsCredentials, windowsMachineType } from "../../src/namespace/windows-launcher.js";
import type { WindowsNsc } from "../../src/namespace/windows-launcher.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { createFakeWinRm, payloadOf } from "../fakes/winrm/index.js";
import type { FakeWinRm, PowerShellRun } from "../fakes/winrm/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";

const REG_TOKEN = "reg-T0ken-for-windows-11aa";
const RUNNER_TOKEN = "runner-T0ken-for-windows-22bb";
const WIN_PASSWORD = "Win-Pa55word-33cc!";

let tmp: ReturnType<typeof tempDir>;
let nscFake: FakeNsc;
let winrm: FakeWinRm;
let log: ReturnType<typeof captureLogger>;
let tokenFile: string;
let launched: { run: PowerShellRun; launcher: string }[];

beforeEach(async () => {
  tmp = tempDir("fnsc-win-");
  winrm = await createFakeWinRm({ username: "runneradmin", password: WIN_PASSWORD });
  nscFake = createFakeNsc(join(tmp.dir, "nsc"), {
    windowsCredentials: { username: "runneradmin", password: WIN_PASSWORD },
    forward: { "5985": winrm.endpoint },
  });
  tokenFile = join(tmp.dir, "token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: "nsrt_fake_windows" }));
  log = captureLogger("debug");
  launched = [];
  // The fake Windows machine "runs" the prelude: it reads the echoed file, as PowerShell would.
  winrm.setKnobs({
    powershell: (run) => {
      const launcher = payloadOf(run);
      if (launcher === undefined) return { stderr: "no payload", exitCode: 1 };
      launched.push({ run, launcher });
      return { stdout: "forgejo-nsc: runner task forgejo-nsc-nscloud-win1 is Running\r\n", exitCode: 0 };
    },
  });
});
afterEach(async () => {
  await winrm.close();
  tmp.cleanup();
});

function config(ns: Record<string, unknown> = {}) {
  return dispatcherConfigSchema.parse({
    forgejo: { base_url: "https://forgejo.example", token: "pat" },
    namespace: { token_file: tokenFile, region: "ord4", wait_timeout: "2s", ...ns },
    // Upstream publishes no Windows build: the operator hosts one (never fetched in these tests).
    runner: {
      binaries: {
        windows_amd64: {
          url: "https://forgejo.example/api/packages/ops/generic/forgejo-runner/12.13.2/forgejo-runner.exe",
          sha256: "0".repeat(64),
        },
      },
    },
  });
}

function nscCli(): NscCli {
  return new NscCli({
    binary: nscFake.bin,
    region: "ord4",
    tokenFile,
    logger: log.logger,
    env: nscFake.env,
    timeoutMs: { create: 10_000, tunnel: 10_000 },
  });
}

function launcher(ns: Record<string, unknown> = {}, nsc: WindowsNsc = nscCli()): WindowsLauncher {
  return new WindowsLauncher({ config: config(ns), nsc, logger: log.logger, winrmRetryIntervalMs: 20 });
}

function spec(over: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    runnerName: "nscloud-win1",
    platform: "windows",
    labels: ["namespace-profile-windows-large", "msvc:host"],
    image: "",
    machineType: "",
    ttlMs: 2 * 3_600_000,
    env: { BUILD_FLAVOR: "it's $(x) `y` <&>" },
    credentials: { mode: "ephemeral", instanceUrl: "https://forgejo.example", uuid: "uuid-w", token: RUNNER_TOKEN },
    jobHandle: "handle-w",
    instanceLabels: { [LABEL_OWNER]: "d1", [LABEL_RUNNER]: "nscloud-win1", [LABEL_PLATFORM]: "windows" },
    ...over,
  };
}

function assertNoSecrets(text: string): void {
  for (const s of [REG_TOKEN, RUNNER_TOKEN, WIN_PASSWORD]) expect(text).not.toContain(s);
}

/** The runner script the launcher writes to bootstrap.ps1: its single-quoted literal, unescaped. */
function embeddedBootstrap(launcher: string): string {
  const start = launcher.indexOf("'bootstrap.ps1'), '") + "'bootstrap.ps1'), '".length;
  let out = "";
  for (let i = start; i < launcher.length; i++) {
    if (launcher[i] === "'") {
      if (launcher[i + 1] !== "'") return out;
      i++;
    }
    out += launcher[i];
  }
  throw new Error("unterminated bootstrap literal");
}

async function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });
}

describe("WindowsLauncher", () => {
  it("creates the instance, tunnels to WinRM with the record's credentials, starts the runner task and closes everything", async () => {
    const { instanceId } = await launcher().launch(spec());

    const [create] = nscFake.calls("create");
    const argv = create!.argv;
    const flag = (name: string) => argv[argv.indexOf(name) + 1];
    expect(flag("--machine_type")).toBe("windows/amd64:8x16");
    expect(flag("--duration")).toBe("7200s");
    expect(argv).not.toContain("--bare");
    expect(argv).toContain("--cidfile");
    expect(argv).toContain("--output_json_to");
    expect(argv.filter((a, i) => argv[i - 1] === "--label").sort()).toEqual([
      `${LABEL_OWNER}=d1`,
      `${LABEL_PLATFORM}=windows`,
      `${LABEL_RUNNER}=nscloud-win1`,
    ]);

    const [pf] = nscFake.calls("instance port-forward");
    expect(pf!.argv).toEqual(["--region", "ord4", "instance", "port-forward", instanceId, "--target_port", "5985"]);
    const inst = nscFake.instances().find((i) => i.id === instanceId)!;
    expect(inst.port_forwards).toHaveLength(1);

    // NTLM with the service_state credentials; the secret travelled in the shell environment only.
    expect(winrm.auth).toEqual([{ user: "runneradmin", scheme: "Negotiate", ok: true }]);
    const shell = [...winrm.shells.values()][0]!;
    expect(shell.env.FORGEJO_RUNNER_TOKEN).toBe(RUNNER_TOKEN);
    expect(shell.env.BUILD_FLAVOR).toBe("it's $(x) `y` <&>");
    expect(shell.env.FORGEJO_RUNNER_LABELS).toBe("namespace-profile-windows-large:host,msvc:host");
    expect(shell.deleted).toBe(true);
    const lines = shell.commands.map((c) => c.line);
    expect(lines.slice(0, -1).every((l) => l.startsWith("echo "))).toBe(true);
    expect(lines.at(-1)).toMatch(/^powershell\.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand [A-Za-z0-9+/=]+$/);

    const script = launched[0]!.launcher;
    expect(script).toContain("Register-ScheduledTask -TaskName 'forgejo-nsc-nscloud-win1'");
    expect(script).toContain("'FORGEJO_RUNNER_TOKEN'");
    const bootstrap = embeddedBootstrap(script);
    expect(bootstrap).toContain("'--uuid', 'uuid-w'");
    expect(bootstrap).toContain("'--handle', 'handle-w'");
    expect(bootstrap).toContain("$Dir = 'C:\\forgejo-nsc\\nscloud-win1'");
    expect(bootstrap).toContain(`@('--region', 'ord4', 'destroy', '--force', '${instanceId}')`);
    assertNoSecrets(script);
    assertNoSecrets(shell.commands.map((c) => c.line).join("\n"));

    // No local process per runner: the tunnel is gone once launch returns.
    expect(await portIsClosed(inst.port_forwards[0]!.local_port)).toBe(true);
    assertNoSecrets(log.text());
  });

  it("passes the registration token the same way in token mode", async () => {
    await launcher().launch(spec({ credentials: { mode: "token", instanceUrl: "https://forgejo.example", registrationToken: REG_TOKEN } }));
    const shell = [...winrm.shells.values()][0]!;
    expect(shell.env.FORGEJO_RUNNER_TOKEN).toBe(REG_TOKEN);
    expect(shell.env.FORGEJO_RUNNER_UUID).toBeUndefined();
    expect(embeddedBootstrap(launched[0]!.launcher)).toContain(
      "Invoke-Runner @('register', '--no-interactive', '--instance', 'https://forgejo.example', '--token', $env:FORGEJO_RUNNER_TOKEN",
    );
    assertNoSecrets(launched[0]!.launcher);
  });

  it("sizes the machine from the label, the request or namespace.windows_machine_type", async () => {
    expect(windowsMachineType("", ["namespace-profile-windows-small"])).toBe("windows/amd64:2x4");
    expect(windowsMachineType(undefined, ["namespace-profile-windows-medium"])).toBe("windows/amd64:4x8");
    expect(windowsMachineType("", ["namespace-profile-windows-whatever"])).toBe("windows/amd64:8x16");
    expect(windowsMachineType("16x32", [])).toBe("windows/amd64:16x32");
    expect(windowsMachineType("windows/amd64:4x8", [])).toBe("windows/amd64:4x8");
    expect(() => windowsMachineType("linux/amd64:4x8", [])).toThrow(/not a Windows shape/);
    expect(() => launcher({ windows_machine_type: "huge" })).toThrow(/not a Windows shape/);

    await launcher().launch(spec({ labels: ["namespace-profile-windows-medium"] }));
    const argv = nscFake.calls("create")[0]!.argv;
    expect(argv[argv.indexOf("--machine_type") + 1]).toBe("windows/amd64:4x8");

    const err = (await launcher()
      .launch(spec({ machineType: "linux/arm64:4x8" }))
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("invalid");
    expect(nscFake.calls("create")).toHaveLength(1);
  });

  it("fails clearly and destroys the instance when the record has no credentials", async () => {
    nscFake.setKnobs({ windowsCredentials: { username: "", password: "" } });
    const err = (await launcher()
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err).toBeInstanceOf(LaunchError);
    expect(err.kind).toBe("transient");
    expect(err.message).toContain("no rdp or winrm credentials in its service_state");
    expect(nscFake.instances()).toEqual([]);
    expect(nscFake.calls("instance port-forward")).toEqual([]);
  });

  it("gives up when WinRM refuses the credentials, without revealing them, and destroys the instance", async () => {
    nscFake.setKnobs({ windowsCredentials: { username: "runneradmin", password: "Wrong-Pa55-44dd" } });
    const err = (await launcher({ wait_timeout: "300ms" })
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.message).toContain('WinRM refused the credentials of user "runneradmin"');
    expect(err.message).not.toContain("Wrong-Pa55-44dd");
    expect(winrm.auth.every((a) => !a.ok)).toBe(true);
    expect(nscFake.instances()).toEqual([]);
    assertNoSecrets(err.message + log.text());
    expect(log.text()).not.toContain("Wrong-Pa55-44dd");
  });

  it("waits for WinRM to come up after boot", async () => {
    winrm.setKnobs({ resetConnections: 3, unavailable: 1 });
    const { instanceId } = await launcher().launch(spec());
    expect(launched).toHaveLength(1);
    // Every refusal was met and retried over WinRM, against the one instance: never a second create.
    expect(winrm.knobs).toMatchObject({ resetConnections: 0, unavailable: 0 });
    expect(winrm.requests.filter((r) => r.action === "unavailable")).toHaveLength(1);
    expect(nscFake.calls("create")).toHaveLength(1);
    expect(nscFake.instances().map((i) => i.id)).toEqual([instanceId]);
  });

  it("fails when WinRM never answers through the tunnel", async () => {
    nscFake.setKnobs({ forward: null });
    const err = (await launcher({ wait_timeout: "300ms" })
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("transient");
    expect(err.message).toMatch(/WinRM at 127\.0\.0\.1:\d+ is not reachable/);
    expect(nscFake.instances()).toEqual([]);
  });

  it("fails when the tunnel cannot be opened (the instance vanished after boot)", async () => {
    const real = nscCli();
    const vanishing: WindowsNsc = {
      create: (o) => real.create(o),
      list: (l) => real.list(l),
      destroy: (id) => real.destroy(id),
      portForward: async (id, port) => {
        nscFake.destroyAll();
        return real.portForward(id, port);
      },
    };
    const err = (await launcher({}, vanishing)
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("transient");
    expect(err.message).toContain("opening the WinRM tunnel (nsc instance port-forward");
    expect(err.message).toContain("is no longer running");
  });

  it("reports the launcher's PowerShell error (CLIXML cleaned, secrets removed) and destroys the instance", async () => {
    winrm.setKnobs({
      powershell: (run) => ({
        stderr: `#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">Register-ScheduledTask : Access is denied. token=${run.env.FORGEJO_RUNNER_TOKEN}_x000D__x000A_</S></Objs>`,
        exitCode: 1,
      }),
    });
    const err = (await launcher()
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(err.kind).toBe("transient");
    expect(err.message).toContain("the PowerShell launcher failed (exit 1): Register-ScheduledTask : Access is denied. token=[redacted]");
    assertNoSecrets(err.message + log.text());
    expect(nscFake.instances()).toEqual([]);
  });

  it("maps nsc create failures to launch error kinds", async () => {
    nscFake.setKnobs({ auth: "expired" });
    const auth = (await launcher()
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(auth.kind).toBe("auth");
    nscFake.setKnobs({ auth: null, createCapacity: true, createRetryLogMs: 100 });
    const short = new NscCli({
      binary: nscFake.bin,
      region: "ord4",
      tokenFile,
      logger: log.logger,
      env: nscFake.env,
      timeoutMs: { create: 1_000 },
    });
    const capacity = (await launcher({}, short)
      .launch(spec())
      .catch((e: unknown) => e)) as LaunchError;
    expect(capacity.kind).toBe("capacity");
    expect(capacity.message).toContain("creating Windows instance for runner nscloud-win1 failed");
  });

  it("lists only its Windows instances, with labels, from a fresh launcher (restart recovery)", async () => {
    const { instanceId } = await launcher().launch(spec());
    // A Linux runner of the same dispatcher must not show up as a Windows instance.
    await nscCli().run({
      image: "img",
      labels: { [LABEL_OWNER]: "d1", [LABEL_RUNNER]: "linux1", [LABEL_PLATFORM]: "linux" },
      command: ["/bin/true"],
    });
    const after = launcher();
    const listed = await after.list({ [LABEL_OWNER]: "d1" });
    expect(listed).toEqual([
      {
        instanceId,
        labels: { [LABEL_OWNER]: "d1", [LABEL_RUNNER]: "nscloud-win1", [LABEL_PLATFORM]: "windows" },
        createdAt: expect.any(String),
      },
    ]);
    await after.destroy(instanceId);
    await after.destroy(instanceId);
    expect(await after.list({ [LABEL_OWNER]: "d1" })).toEqual([]);
  });

  it("reads credentials from winrm first, then rdp", () => {
    expect(
      windowsCredentials({ cluster_id: "x", service_state: [{ name: "rdp", credentials: { username: "r", password: "p1" } }] }),
    ).toEqual({ username: "r", password: "p1" });
    expect(
      windowsCredentials({
        cluster_id: "x",
        service_state: [
          { name: "rdp", credentials: { username: "r", password: "p1" } },
          { name: "winrm", credentials: { username: "w", password: "p2" } },
        ],
      }),
    ).toEqual({ username: "w", password: "p2" });
    expect(windowsCredentials({ cluster_id: "x", service_state: [{ name: "ssh" }] })).toBeUndefined();
    expect(windowsCredentials({ cluster_id: "x" })).toBeUndefined();
  });
});
