import { afterEach, describe, expect, it } from "vitest";
import { Metrics } from "../../src/http/metrics.js";
import { WinRmClient, encodePowerShell, openShellWithRetry } from "../../src/namespace/winrm/client.js";
import { WinRmError } from "../../src/namespace/winrm/errors.js";
import { ntlmIdentity, parseAuthenticate } from "../../src/namespace/winrm/ntlm.js";
import { commandBody, createShellBody, envelope, parseEnvelope, receiveResultOf, xmlEscape } from "../../src/namespace/winrm/soap.js";
import { createFakeWinRm } from "../fakes/winrm/index.js";
import { waitFor } from "../helpers/wait.js";
import type { FakeWinRm } from "../fakes/winrm/index.js";

let fake: FakeWinRm | undefined;
let client: WinRmClient | undefined;
afterEach(async () => {
  await client?.close();
  await fake?.close();
  client = undefined;
  fake = undefined;
});

let metrics: Metrics;
async function setup(password?: string): Promise<{ fake: FakeWinRm; client: WinRmClient }> {
  fake = await createFakeWinRm();
  metrics = new Metrics({ defaultMetrics: false });
  client = new WinRmClient({
    endpoint: fake.endpoint,
    username: fake.username,
    password: password ?? fake.password,
    requestTimeoutMs: 5_000,
    metrics,
  });
  return { fake, client };
}

describe("WinRM client against the fake endpoint", () => {
  it("authenticates with NTLM once per connection and runs a PowerShell command", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ powershell: (run) => ({ stdout: `ran ${run.script.length} chars\r\n`, stderr: "", exitCode: 0 }) });
    const shell = await client.openShell({ FNSC_SECRET: "s3cr3t<&>'\"", PLAIN: "x" });
    const script = "Write-Output 'héllo ✓'";
    const r = await client.run(shell, "powershell.exe", ["-NoProfile", "-NonInteractive", "-EncodedCommand", encodePowerShell(script)]);
    await client.deleteShell(shell);

    expect(r).toEqual({ stdout: `ran ${script.length} chars\r\n`, stderr: "", exitCode: 0 });
    expect(fake.powershellRuns.map((p) => p.script)).toEqual([script]);
    // The shell environment carried the values byte for byte, XML-escaped on the wire.
    expect(fake.powershellRuns[0]!.env).toEqual({ FNSC_SECRET: "s3cr3t<&>'\"", PLAIN: "x" });
    expect(fake.auth).toEqual([{ user: fake.username, scheme: "Negotiate", ok: true }]);
    // One handshake, one connection: every later request rode the authenticated socket.
    expect(fake.connections).toBe(1);
    const actions = fake.requests.map((q) => q.action);
    expect(actions).toEqual(["ntlm-negotiate", "ntlm-authenticate", "Create", "Command", "Receive", "Signal", "Delete"]);
    // Every SOAP message went NTLM-sealed, as WinRM over HTTP demands by default.
    expect(fake.requests.slice(2).every((q) => q.encrypted && q.status === 200)).toBe(true);
    const shellRec = [...fake.shells.values()][0]!;
    expect(shellRec.deleted).toBe(true);
    const counted = await metrics.registry.getSingleMetricAsString("forgejo_nsc_namespace_calls_total");
    for (const command of ["Create", "Command", "Receive", "Signal", "Delete"])
      expect(counted).toContain(`api="winrm",command="${command}",outcome="ok"} 1`);
    expect(shellRec.commands[0]!.signalled).toBe(true);
  });

  it("reports the remote exit code and stderr", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ powershell: () => ({ stdout: "", stderr: "boom\r\n", exitCode: 7 }) });
    const shell = await client.openShell();
    const r = await client.run(shell, "powershell.exe", ["-EncodedCommand", encodePowerShell("exit 7")]);
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toBe("boom\r\n");
  });

  it("keeps asking when Receive times out on the server (OperationTimeout fault)", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ receiveTimeouts: 2, powershell: () => ({ stdout: "done", exitCode: 0 }) });
    const shell = await client.openShell();
    const r = await client.run(shell, "powershell.exe", ["-EncodedCommand", encodePowerShell("1")]);
    expect(r.stdout).toBe("done");
    expect(fake.requests.filter((q) => q.action === "Receive").map((q) => q.status)).toEqual([500, 500, 200]);
  });

  it("refuses a wrong password with an auth error that names the user but not the password", async () => {
    const { fake, client } = await setup("definitely-wrong-pw");
    const err = await client.openShell().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WinRmError);
    expect((err as WinRmError).kind).toBe("auth");
    expect((err as WinRmError).message).toContain(fake.username);
    expect((err as WinRmError).message).not.toContain("definitely-wrong-pw");
    expect(fake.auth[0]).toMatchObject({ ok: false, reason: "wrong password (NTProofStr mismatch)" });
    expect(fake.shells.size).toBe(0);
  });

  it("answers in NTLM when the server offers only NTLM", async () => {
    const { fake, client } = await setup();
    // A server with Negotiate disabled answers our Negotiate type 1 with a bare 401 offering NTLM.
    fake.setKnobs({ offerSchemes: ["NTLM"], acceptSchemes: ["NTLM"] });
    const shell = await client.openShell();
    expect(shell).toMatch(/^[0-9A-F-]{36}$/);
    expect(fake.requests.map((r) => r.action)).toEqual(["unsupported-scheme", "ntlm-negotiate", "ntlm-authenticate", "Create"]);
    expect(fake.auth).toEqual([{ user: fake.username, scheme: "NTLM", ok: true }]);
  });

  it("sends plain SOAP when the server grants no sealing (a service with AllowUnencrypted=true)", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ grantSealing: false, allowUnencrypted: true });
    const shell = await client.openShell({ A: "1" });
    expect(fake.shells.get(shell)!.env).toEqual({ A: "1" });
    expect(fake.requests.at(-1)).toMatchObject({ action: "Create", encrypted: false, status: 200 });
  });

  it("reports a service that refuses plain SOAP when no sealing was granted", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ grantSealing: false });
    const err = (await client.openShell().catch((e: unknown) => e)) as WinRmError;
    expect(err).toBeInstanceOf(WinRmError);
    expect(err.message).toContain("unencrypted");
  });

  it("surfaces a SOAP fault with its WSMan code", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ faultOn: { action: "create", message: "Access is denied.", code: "5" } });
    const err = (await client.openShell().catch((e: unknown) => e)) as WinRmError;
    expect(err.kind).toBe("fault");
    expect(err.wsmanCode).toBe("5");
    expect(err.message).toContain("Access is denied.");
  });

  it("re-authenticates after the connection drops", async () => {
    const { fake, client } = await setup();
    const shell = await client.openShell();
    fake.dropConnections();
    await waitFor(() => !client.authenticatedConnection, { what: "the client to notice the dropped connection" });
    await client.deleteShell(shell);
    expect(fake.auth.filter((a) => a.ok)).toHaveLength(2);
    expect(fake.connections).toBe(2);
    expect(fake.shells.get(shell)!.deleted).toBe(true);
  });
});

describe("openShellWithRetry", () => {
  it("retries while WinRM is not up (connection resets, 503) and then succeeds", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ resetConnections: 2, unavailable: 1 });
    const shell = await openShellWithRetry(client, { A: "1" }, { deadlineMs: Date.now() + 10_000, intervalMs: 10 });
    expect(fake.shells.get(shell)!.env).toEqual({ A: "1" });
    expect(fake.requests.some((r) => r.status === 503)).toBe(true);
  });

  it("gives up at the deadline with the last error", async () => {
    fake = await createFakeWinRm();
    const port = fake.port;
    await fake.close();
    fake = undefined;
    client = new WinRmClient({ endpoint: `127.0.0.1:${port}`, username: "u", password: "p" });
    const started = Date.now();
    const err = (await openShellWithRetry(client, {}, { deadlineMs: Date.now() + 300, intervalMs: 50 }).catch(
      (e: unknown) => e,
    )) as WinRmError;
    expect(err.kind).toBe("unreachable");
    expect(err.message).toMatch(/not reachable .*after \d+ attempts/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("retries a fault answered with HTTP 500 (the service still starting)", async () => {
    const { fake, client } = await setup();
    fake.setKnobs({ faultOn: { action: "create", message: "The WS-Management service is starting.", code: "1" } });
    const shell = await openShellWithRetry(client, {}, { deadlineMs: Date.now() + 5_000, intervalMs: 10 });
    expect(shell).toBeTruthy();
  });
});

describe("SOAP builders and parsers", () => {
  it("escapes XML and refuses control characters", () => {
    expect(xmlEscape(`<a href="x">&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
    expect(() => xmlEscape("a\u0001b")).toThrow(/control characters/);
    expect(xmlEscape("tab\tnew\nline")).toBe("tab\tnew\nline");
  });

  it("builds envelopes whose parse gives back the action, selector and body", () => {
    const xml = envelope({
      to: "http://h:1/wsman",
      action: "urn:act",
      shellId: "S-1",
      options: { K: "V" },
      body: createShellBody({ X: "a&b" }),
    });
    const p = parseEnvelope(xml);
    expect(p.action).toBe("urn:act");
    expect(JSON.stringify(p.header)).toContain("S-1");
    expect(JSON.stringify(p.body)).toContain("a&b");
    expect(commandBody("cmd", ["/c", "echo <x>"])).toContain("<rsp:Arguments>echo &lt;x&gt;</rsp:Arguments>");
  });

  it("parses Receive responses with several stream chunks and the exit code", () => {
    const xml =
      `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body><rsp:ReceiveResponse>` +
      `<rsp:Stream Name="stdout" CommandId="C">${Buffer.from("ab").toString("base64")}</rsp:Stream>` +
      `<rsp:Stream Name="stdout" CommandId="C">${Buffer.from("cd").toString("base64")}</rsp:Stream>` +
      `<rsp:Stream Name="stderr" CommandId="C" End="true"></rsp:Stream>` +
      `<rsp:CommandState CommandId="C" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>3</rsp:ExitCode></rsp:CommandState>` +
      `</rsp:ReceiveResponse></s:Body></s:Envelope>`;
    const r = receiveResultOf(parseEnvelope(xml));
    expect(r.stdout.toString()).toBe("abcd");
    expect(r.stderr.length).toBe(0);
    expect(r.done).toBe(true);
    expect(r.exitCode).toBe(3);
  });

  it("splits DOMAIN\\user and reads WWW-Authenticate lists", () => {
    expect(ntlmIdentity("WIN\\admin", "p")).toEqual({ username: "admin", password: "p", domain: "WIN" });
    expect(ntlmIdentity(".\\admin", "p")).toEqual({ username: "admin", password: "p", domain: "" });
    expect(ntlmIdentity("admin", "p").domain).toBe("");
    expect(parseAuthenticate(["Negotiate", "Kerberos"])).toEqual([{ scheme: "Negotiate" }, { scheme: "Kerberos" }]);
    expect(parseAuthenticate("NTLM abc=")).toEqual([{ scheme: "NTLM", token: "abc=" }]);
  });
});
