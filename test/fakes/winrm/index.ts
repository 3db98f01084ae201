import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { XMLParser } from "fast-xml-parser";
import {
  ENCRYPTED_TYPE,
  challengeMessage,
  messageType,
  newChallenge,
  openBody,
  requestedFlags,
  sealBody,
  verifyType3,
} from "./ntlm-server.js";
import type { ServerSession } from "./ntlm-server.js";

/**
 * A fake Windows WinRM endpoint (WS-Management over HTTP at /wsman) for tests. It demands NTLM on
 * every connection (type 1 → 401 challenge → type 3, verified cryptographically against the
 * configured password), requires NTLM-sealed multipart/encrypted bodies afterwards (Windows'
 * default AllowUnencrypted=false; a knob allows plain SOAP), speaks the shell messages Create,
 * Command, Receive, Signal and Delete,
 * emulates the two commands a launcher sends (`echo … >> "file"` and
 * `powershell … -EncodedCommand …`), records everything, and fails on demand.
 */

const RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
const A = {
  create: "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create",
  delete: "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete",
  command: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
  receive: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive",
  signal: "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal",
};

export interface PowerShellRun {
  shellId: string;
  script: string;
  env: Record<string, string>;
  /** Files (path → content) as they were when the script ran. */
  files: Map<string, string>;
}

export interface CommandOutcome {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
}

export interface FakeShell {
  id: string;
  env: Record<string, string>;
  commands: { id: string; line: string; outcome: Required<CommandOutcome>; received: boolean; signalled: boolean }[];
  deleted: boolean;
  user: string;
}

export interface WinRmKnobs {
  /** Reset the next N TCP connections before answering (WinRM not up yet). */
  resetConnections: number;
  /** Answer the next N requests with 503 and an HTML page. */
  unavailable: number;
  /** Schemes in the bare 401's WWW-Authenticate. */
  offerSchemes: string[];
  /** Schemes whose NEGOTIATE message gets a challenge; others get a bare 401 with offerSchemes. */
  acceptSchemes: string[];
  /** Every AUTHENTICATE fails, whatever the password. */
  rejectAll: boolean;
  /** Receive answers with an OperationTimeout fault N times per command before the output. */
  receiveTimeouts: number;
  /** Accept plain SOAP on an authenticated connection (AllowUnencrypted=true); default false. */
  allowUnencrypted: boolean;
  /** Grant signing/sealing/key exchange in the CHALLENGE when asked (default true). */
  grantSealing: boolean;
  /** A SOAP fault instead of the normal answer for the next call of this action ("Create", "Command", …). */
  faultOn: { action: string; message: string; code?: string } | undefined;
  /** What a PowerShell run prints and returns; default: nothing, exit 0. */
  powershell: ((run: PowerShellRun) => CommandOutcome) | undefined;
}

export interface FakeWinRm {
  /** host:port */
  endpoint: string;
  port: number;
  username: string;
  password: string;
  knobs: WinRmKnobs;
  setKnobs(k: Partial<WinRmKnobs>): void;
  shells: Map<string, FakeShell>;
  files: Map<string, string>;
  powershellRuns: PowerShellRun[];
  auth: { user?: string; scheme: string; ok: boolean; reason?: string }[];
  requests: { action: string; status: number; authenticatedConnection: boolean; encrypted: boolean }[];
  /** Connections accepted so far (after resets). */
  connections: number;
  /** Closes every open client connection (a tunnel hiccup). */
  dropConnections(): void;
  close(): Promise<void>;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: false,
  isArray: (name) => ["Variable", "Arguments", "Selector", "Option"].includes(name),
});

type Node = Record<string, unknown>;
const get = (n: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((cur, p) => (cur && typeof cur === "object" ? (cur as Node)[p] : undefined), n);
const txt = (n: unknown): string =>
  n === undefined || n === null ? "" : typeof n === "object" ? String((n as Node)["#text"] ?? "") : String(n);

function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function envelope(action: string, relatesTo: string, body: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>` +
    `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" ` +
    `xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" ` +
    `xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">` +
    `<s:Header><a:Action>${action}</a:Action><a:MessageID>uuid:${randomUUID().toUpperCase()}</a:MessageID>` +
    `<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>${xmlEscape(relatesTo)}</a:RelatesTo></s:Header>` +
    `<s:Body>${body}</s:Body></s:Envelope>`
  );
}

function fault(relatesTo: string, wsmanCode: string, message: string, subcode = "w:InternalError"): string {
  return envelope(
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault",
    relatesTo,
    `<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>${subcode}</s:Value></s:Subcode></s:Code>` +
      `<s:Reason><s:Text xml:lang="en-US">${xmlEscape(message)}</s:Text></s:Reason>` +
      `<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="${wsmanCode}" Machine="fakewin">` +
      `<f:Message>${xmlEscape(message)}</f:Message></f:WSManFault></s:Detail></s:Fault>`,
  );
}

interface ConnState {
  challenge?: Buffer;
  requested?: number;
  authenticated: boolean;
  user?: string;
  session?: ServerSession;
}

export async function createFakeWinRm(opts: { username?: string; password?: string } = {}): Promise<FakeWinRm> {
  const username = opts.username ?? "runneradmin";
  const password = opts.password ?? `P@ss-${randomUUID().slice(0, 8)}`;
  const knobs: WinRmKnobs = {
    resetConnections: 0,
    unavailable: 0,
    offerSchemes: ["Negotiate"],
    acceptSchemes: ["Negotiate", "NTLM"],
    rejectAll: false,
    receiveTimeouts: 0,
    allowUnencrypted: false,
    grantSealing: true,
    faultOn: undefined,
    powershell: undefined,
  };
  const shells = new Map<string, FakeShell>();
  const files = new Map<string, string>();
  const powershellRuns: PowerShellRun[] = [];
  const auth: FakeWinRm["auth"] = [];
  const requests: FakeWinRm["requests"] = [];
  const conns = new WeakMap<Socket, ConnState>();
  const receiveCounts = new Map<string, number>();

  function runCommand(shell: FakeShell, line: string): Required<CommandOutcome> {
    // cmd writes everything between "echo " and the redirection (trailing space included) plus CRLF.
    const echo = /^echo (.*?)(>>?)\s*"([^"]+)"\s*$/is.exec(line);
    if (echo) {
      const [, text, op, path] = echo as unknown as [string, string, string, string];
      files.set(path, (op === ">>" ? (files.get(path) ?? "") : "") + `${text}\r\n`);
      return { stdout: "", stderr: "", exitCode: 0 };
    }
    const ps = /^powershell(?:\.exe)?\s.*-EncodedCommand\s+([A-Za-z0-9+/=]+)\s*$/is.exec(line);
    if (ps) {
      const script = Buffer.from(ps[1]!, "base64").toString("utf16le");
      const run: PowerShellRun = { shellId: shell.id, script, env: { ...shell.env }, files: new Map(files) };
      powershellRuns.push(run);
      const o = knobs.powershell?.(run) ?? {};
      return { stdout: o.stdout ?? "", stderr: o.stderr ?? "", exitCode: o.exitCode ?? 0 };
    }
    const name = line.split(/\s+/)[0] ?? "";
    return {
      stdout: "",
      stderr: `'${name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n`,
      exitCode: 1,
    };
  }

  function handleSoap(xml: string, user: string): { status: number; body: string } {
    let doc: unknown;
    try {
      doc = parser.parse(xml);
    } catch {
      return { status: 400, body: "" };
    }
    const header = get(doc, "Envelope", "Header");
    const body = get(doc, "Envelope", "Body");
    const action = txt(get(header, "Action")).trim();
    const messageId = txt(get(header, "MessageID")).trim();
    const resource = txt(get(header, "ResourceURI")).trim();
    const selectors = (get(header, "SelectorSet", "Selector") as unknown[] | undefined) ?? [];
    const shellId = txt(selectors.find((s) => (s as Node)["@_Name"] === "ShellId")).trim();
    const short = Object.entries(A).find(([, v]) => v === action)?.[0] ?? action;
    if (resource !== RESOURCE_CMD)
      return {
        status: 500,
        body: fault(
          messageId,
          "2150858778",
          `The WS-Management service cannot process the request. The resource URI ${resource} was not found.`,
        ),
      };
    if (knobs.faultOn && knobs.faultOn.action.toLowerCase() === short.toLowerCase()) {
      const f = knobs.faultOn;
      knobs.faultOn = undefined;
      return { status: 500, body: fault(messageId, f.code ?? "2147942405", f.message) };
    }
    if (action === A.create) {
      const vars = (get(body, "Shell", "Environment", "Variable") as unknown[] | undefined) ?? [];
      const env: Record<string, string> = {};
      for (const v of vars) env[String((v as Node)["@_Name"])] = txt(v);
      const id = randomUUID().toUpperCase();
      shells.set(id, { id, env, commands: [], deleted: false, user });
      return {
        status: 200,
        body: envelope(
          "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
          messageId,
          `<x:ResourceCreated><a:Address>http://fakewin:5985/wsman</a:Address><a:ReferenceParameters>` +
            `<w:ResourceURI>${RESOURCE_CMD}</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">${id}</w:Selector></w:SelectorSet>` +
            `</a:ReferenceParameters></x:ResourceCreated><rsp:Shell><rsp:ShellId>${id}</rsp:ShellId><rsp:State>Connected</rsp:State></rsp:Shell>`,
        ),
      };
    }
    const shell = shells.get(shellId);
    if (!shell || shell.deleted) {
      return {
        status: 500,
        body: fault(
          messageId,
          "2150858843",
          `The request for the Windows Remote Shell with ShellId ${shellId} failed because the shell was not found on the server.`,
        ),
      };
    }
    if (action === A.command) {
      const cmd = txt(get(body, "CommandLine", "Command"));
      const args = ((get(body, "CommandLine", "Arguments") as unknown[] | undefined) ?? []).map(txt);
      const line = [cmd, ...args].join(" ");
      const id = randomUUID().toUpperCase();
      shell.commands.push({ id, line, outcome: runCommand(shell, line), received: false, signalled: false });
      return {
        status: 200,
        body: envelope(
          `${A.command}Response`,
          messageId,
          `<rsp:CommandResponse><rsp:CommandId>${id}</rsp:CommandId></rsp:CommandResponse>`,
        ),
      };
    }
    if (action === A.receive) {
      const commandId = String((get(body, "Receive", "DesiredStream") as Node | undefined)?.["@_CommandId"] ?? "");
      const command = shell.commands.find((c) => c.id === commandId);
      if (!command) return { status: 500, body: fault(messageId, "2150858843", "The command was not found.") };
      const seen = receiveCounts.get(commandId) ?? 0;
      receiveCounts.set(commandId, seen + 1);
      if (seen < knobs.receiveTimeouts) {
        return {
          status: 500,
          body: fault(
            messageId,
            "2150858793",
            "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
            "w:TimedOut",
          ),
        };
      }
      command.received = true;
      const o = command.outcome;
      const streams =
        `<rsp:Stream Name="stdout" CommandId="${commandId}">${Buffer.from(o.stdout).toString("base64")}</rsp:Stream>` +
        `<rsp:Stream Name="stderr" CommandId="${commandId}">${Buffer.from(o.stderr).toString("base64")}</rsp:Stream>` +
        `<rsp:Stream Name="stdout" CommandId="${commandId}" End="true"></rsp:Stream>` +
        `<rsp:Stream Name="stderr" CommandId="${commandId}" End="true"></rsp:Stream>`;
      return {
        status: 200,
        body: envelope(
          `${A.receive}Response`,
          messageId,
          `<rsp:ReceiveResponse>${streams}<rsp:CommandState CommandId="${commandId}" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done">` +
            `<rsp:ExitCode>${o.exitCode}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>`,
        ),
      };
    }
    if (action === A.signal) {
      const commandId = String((get(body, "Signal") as Node | undefined)?.["@_CommandId"] ?? "");
      const command = shell.commands.find((c) => c.id === commandId);
      if (command) command.signalled = true;
      return { status: 200, body: envelope(`${A.signal}Response`, messageId, `<rsp:SignalResponse/>`) };
    }
    if (action === A.delete) {
      shell.deleted = true;
      return { status: 200, body: envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", messageId, "") };
    }
    return { status: 500, body: fault(messageId, "2150858817", `The action ${action} is not supported.`) };
  }

  function reply(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body = ""): void {
    res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const socket = req.socket;
    const state = conns.get(socket) ?? { authenticated: false };
    conns.set(socket, state);
    const encrypted = String(req.headers["content-type"] ?? "").includes("HTTP-SPNEGO-session-encrypted");
    const record = (action: string, status: number): void => {
      requests.push({ action, status, authenticatedConnection: state.authenticated, encrypted });
    };

    if (knobs.unavailable > 0) {
      knobs.unavailable--;
      record("unavailable", 503);
      reply(res, 503, { "content-type": "text/html" }, "<html><body><h1>Service Unavailable</h1></body></html>");
      return;
    }
    if (req.url !== "/wsman" || req.method !== "POST") {
      record("bad-path", 404);
      reply(res, 404, {});
      return;
    }

    const authz = req.headers.authorization;
    if (authz) {
      const m = /^(Negotiate|NTLM)\s+([A-Za-z0-9+/=]+)$/i.exec(authz);
      const token = m ? Buffer.from(m[2]!, "base64") : Buffer.alloc(0);
      const scheme = m?.[1] ?? authz.split(" ")[0] ?? "";
      const type = messageType(token);
      if (!knobs.acceptSchemes.some((a) => a.toLowerCase() === scheme.toLowerCase())) {
        record("unsupported-scheme", 401);
        reply(res, 401, { "www-authenticate": knobs.offerSchemes });
        return;
      }
      if (type === 1) {
        state.challenge = newChallenge();
        // Without sealing granted the client must fall back to plain SOAP.
        state.requested = knobs.grantSealing ? requestedFlags(token) : requestedFlags(token) & ~(0x10 | 0x20 | 0x40000000);
        state.authenticated = false;
        state.session = undefined;
        record("ntlm-negotiate", 401);
        reply(res, 401, { "www-authenticate": `${scheme} ${challengeMessage(state.challenge, state.requested).toString("base64")}` });
        return;
      }
      if (type === 3 && state.challenge) {
        const verdict = knobs.rejectAll
          ? { ok: false as const, reason: "rejected by knob" }
          : verifyType3(token, state.challenge, { username, password });
        state.challenge = undefined;
        if (!verdict.ok) {
          auth.push({ user: verdict.user, scheme, ok: false, reason: verdict.reason });
          record("ntlm-authenticate", 401);
          reply(res, 401, { "www-authenticate": knobs.offerSchemes });
          return;
        }
        auth.push({ user: verdict.user, scheme, ok: true });
        state.authenticated = true;
        state.user = verdict.user;
        state.session = verdict.session;
        if (raw.length === 0) {
          // WinRM clients authenticate with an empty body before sealing anything.
          record("ntlm-authenticate", 200);
          reply(res, 200, {});
          return;
        }
      } else if (!state.authenticated) {
        record("bad-auth", 401);
        reply(res, 401, { "www-authenticate": knobs.offerSchemes });
        return;
      }
    }
    if (!state.authenticated) {
      record("unauthenticated", 401);
      reply(res, 401, { "www-authenticate": knobs.offerSchemes });
      return;
    }

    let xml: string;
    if (encrypted) {
      if (!state.session) {
        record("encrypted-without-session", 400);
        reply(res, 400, {});
        return;
      }
      try {
        xml = openBody(state.session, raw);
      } catch (err) {
        // Windows drops a connection whose sealed message does not verify.
        record(`bad-seal: ${(err as Error).message}`, 400);
        reply(res, 400, {});
        socket.destroy();
        return;
      }
    } else {
      if (!knobs.allowUnencrypted) {
        record("unencrypted-refused", 400);
        reply(
          res,
          400,
          { "content-type": "application/soap+xml;charset=UTF-8" },
          fault("", "2150858770", "The WinRM service does not accept unencrypted traffic (AllowUnencrypted=false)."),
        );
        return;
      }
      xml = raw.toString("utf8");
    }
    const out = handleSoap(xml, state.user ?? "");
    const action = /<a:Action[^>]*>([^<]+)</.exec(xml)?.[1]?.split("/").pop() ?? "?";
    record(action, out.status);
    if (encrypted && state.session) {
      const sealed = sealBody(state.session, out.body);
      res.writeHead(out.status, { "content-type": ENCRYPTED_TYPE, "content-length": sealed.length });
      res.end(sealed);
    } else {
      reply(res, out.status, out.body ? { "content-type": "application/soap+xml;charset=UTF-8" } : {}, out.body);
    }
  }

  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, 500, {}, String(err));
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on("connection", (socket: Socket) => {
    if (knobs.resetConnections > 0) {
      knobs.resetConnections--;
      socket.resetAndDestroy();
      return;
    }
    connections++;
    api.connections = connections;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const api: FakeWinRm = {
    endpoint: `127.0.0.1:${port}`,
    port,
    username,
    password,
    knobs,
    setKnobs(k) {
      Object.assign(knobs, k);
    },
    shells,
    files,
    powershellRuns,
    auth,
    requests,
    connections: 0,
    dropConnections() {
      for (const s of sockets) s.destroy();
    },
    close() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
  return api;
}

/**
 * What PowerShell would run for a prelude that reads a base64 file from %TEMP%: the decoded
 * payload (UTF-8), or undefined when the script reads no such file.
 */
export function payloadOf(run: PowerShellRun): string | undefined {
  const m = /Join-Path \$env:TEMP '([^']+)'/.exec(run.script);
  if (!m) return undefined;
  const content = run.files.get(`%TEMP%\\${m[1]}`);
  if (content === undefined) return undefined;
  return Buffer.from(content.replace(/\s+/g, ""), "base64").toString("utf8");
}
