import { Client } from "undici";
import type { Logger } from "../../http/logger.js";
import type { Metrics } from "../../http/metrics.js";
import { WinRmError } from "./errors.js";
import { chooseScheme, ntlmIdentity, parseAuthenticate } from "./ntlm.js";
import type { AuthScheme, NtlmIdentity } from "./ntlm.js";
import {
  ENCRYPTED_CONTENT_TYPE,
  NtlmSession,
  authenticateMessage,
  negotiateMessage,
  parseChallenge,
  unwrapMessage,
  wrapMessage,
} from "./ntlm-session.js";
import {
  ACTION,
  FAULT_OPERATION_TIMEOUT,
  commandBody,
  commandIdOf,
  createShellBody,
  envelope,
  parseEnvelope,
  receiveBody,
  receiveResultOf,
  shellIdOf,
  signalBody,
} from "./soap.js";
import type { ParsedEnvelope } from "./soap.js";
import { errorMessage } from "../../shared/error-message.js";

export interface WinRmOptions {
  /** host:port of the WinRM HTTP listener (here: the local end of `nsc instance port-forward`). */
  endpoint: string;
  username: string;
  password: string;
  /** Per HTTP request. */
  requestTimeoutMs?: number;
  /** WS-Man OperationTimeout of a Receive: how long the service holds a Receive open. */
  operationTimeoutSec?: number;
  logger?: Logger;
  /** Counts calls in forgejo_nsc_namespace_calls_total{api="winrm"}. */
  metrics?: Metrics | undefined;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const CONTENT_TYPE = "application/soap+xml;charset=UTF-8";

/**
 * A WinRM (WS-Management shell) client over plain HTTP with NTLM authentication and NTLM message
 * sealing (what WinRM requires on HTTP by default). One undici Client means one TCP connection, so
 * the connection-oriented NTLM handshake and the sealed requests that follow stay on the same
 * socket; a reconnect triggers a fresh handshake and fresh session keys.
 */
export class WinRmClient {
  private readonly http: Client;
  private readonly identity: NtlmIdentity;
  private readonly url: string;
  private authenticated = false;
  /** Sealing state of the authenticated connection; undefined when the server granted no sealing. */
  private session: NtlmSession | undefined;
  private scheme: AuthScheme = "Negotiate";
  private readonly requestTimeoutMs: number;
  private readonly operationTimeoutSec: number;

  constructor(private readonly opts: WinRmOptions) {
    this.url = `http://${opts.endpoint}/wsman`;
    this.identity = ntlmIdentity(opts.username, opts.password);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.operationTimeoutSec = opts.operationTimeoutSec ?? 20;
    this.http = new Client(`http://${opts.endpoint}`, {
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: this.requestTimeoutMs,
      bodyTimeout: this.requestTimeoutMs,
      connect: { timeout: Math.min(this.requestTimeoutMs, 15_000) },
    });
    this.http.on("disconnect", () => {
      this.authenticated = false;
      this.session = undefined;
    });
  }

  /** Whether the current connection has completed the NTLM handshake. */
  get authenticatedConnection(): boolean {
    return this.authenticated;
  }

  async close(): Promise<void> {
    await this.http.close().catch(() => this.http.destroy());
  }

  /** Opens a cmd shell; `env` becomes the shell's environment (how secrets reach the machine). */
  async openShell(env: Record<string, string> = {}): Promise<string> {
    const p = await this.call(ACTION.create, createShellBody(env), {
      options: { WINRS_NOPROFILE: "FALSE", WINRS_CODEPAGE: "65001" },
    });
    const id = shellIdOf(p);
    if (!id) throw new WinRmError("protocol", "WinRM created a shell but returned no ShellId");
    return id;
  }

  async deleteShell(shellId: string): Promise<void> {
    await this.call(ACTION.delete, "", { shellId });
  }

  /**
   * Runs one command line in the shell and collects its output until it is Done. Gives up (and
   * terminates the command) after `timeoutMs`.
   */
  async run(shellId: string, command: string, args: readonly string[] = [], timeoutMs = 300_000): Promise<CommandResult> {
    const started = Date.now();
    const cp = await this.call(ACTION.command, commandBody(command, args), {
      shellId,
      options: { WINRS_CONSOLEMODE_STDIN: "TRUE", WINRS_SKIP_CMD_SHELL: "FALSE" },
    });
    const commandId = commandIdOf(cp);
    if (!commandId) throw new WinRmError("protocol", "WinRM accepted a command but returned no CommandId");
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    try {
      for (;;) {
        if (Date.now() - started > timeoutMs) {
          throw new WinRmError("timeout", `the remote command did not finish within ${Math.round(timeoutMs / 1000)} s`);
        }
        let p: ParsedEnvelope;
        try {
          p = await this.call(ACTION.receive, receiveBody(commandId), { shellId, operationTimeoutSec: this.operationTimeoutSec });
        } catch (err) {
          // No output within the operation timeout is not an error: ask again.
          if (err instanceof WinRmError && err.wsmanCode === FAULT_OPERATION_TIMEOUT) continue;
          throw err;
        }
        const r = receiveResultOf(p);
        stdout.push(r.stdout);
        stderr.push(r.stderr);
        if (r.done) {
          return {
            stdout: Buffer.concat(stdout).toString("utf8"),
            stderr: Buffer.concat(stderr).toString("utf8"),
            exitCode: r.exitCode ?? 0,
          };
        }
      }
    } finally {
      // Releases the command on the server whether it finished or not.
      await this.call(ACTION.signal, signalBody(commandId), { shellId }).catch(() => undefined);
    }
  }

  private async call(
    action: string,
    body: string,
    o: { shellId?: string; options?: Record<string, string>; operationTimeoutSec?: number } = {},
  ): Promise<ParsedEnvelope> {
    const xml = envelope({
      to: this.url,
      action,
      shellId: o.shellId,
      options: o.options,
      operationTimeoutSec: o.operationTimeoutSec,
      body,
    });
    const command = action.slice(action.lastIndexOf("/") + 1);
    try {
      const parsed = await this.exchange(xml);
      this.opts.metrics?.namespaceCalls.inc({ api: "winrm", command, outcome: "ok" });
      return parsed;
    } catch (err) {
      const outcome = err instanceof WinRmError ? (err.wsmanCode === FAULT_OPERATION_TIMEOUT ? "operation_timeout" : err.kind) : "error";
      this.opts.metrics?.namespaceCalls.inc({ api: "winrm", command, outcome });
      throw err;
    }
  }

  private async exchange(xml: string): Promise<ParsedEnvelope> {
    const res = await this.post(xml);
    let parsed: ParsedEnvelope;
    try {
      parsed = parseEnvelope(res.body);
    } catch {
      throw new WinRmError("protocol", `WinRM answered HTTP ${res.status} with a body that is not a SOAP envelope`, res.status);
    }
    if (parsed.fault) {
      const f = parsed.fault;
      throw new WinRmError(
        "fault",
        `WinRM fault${f.wsmanCode ? ` ${f.wsmanCode}` : ""}: ${f.message || f.reason || f.subcode || f.code}`,
        res.status,
        f.wsmanCode,
      );
    }
    if (res.status !== 200) throw new WinRmError("protocol", `WinRM answered HTTP ${res.status}`, res.status);
    return parsed;
  }

  private async post(xml: string): Promise<{ status: number; body: string }> {
    if (!this.authenticated) await this.handshake();
    let res = await this.sendSoap(xml);
    if (res.status === 401) {
      // The connection was re-opened under us (keep-alive expired): authenticate it again.
      this.authenticated = false;
      await this.handshake();
      res = await this.sendSoap(xml);
      if (res.status === 401)
        throw new WinRmError("auth", `WinRM answered 401 on an authenticated connection for user "${this.opts.username}"`, 401);
    }
    return res;
  }

  /** Sends one SOAP message, sealed when the session allows it, and opens the sealed answer. */
  private async sendSoap(xml: string): Promise<{ status: number; body: string }> {
    const session = this.session;
    const res = session
      ? await this.send(wrapMessage(session, xml), ENCRYPTED_CONTENT_TYPE, undefined)
      : await this.send(Buffer.from(xml, "utf8"), CONTENT_TYPE, undefined);
    const ctype = String(res.headers["content-type"] ?? "");
    if (session && ctype.includes("HTTP-SPNEGO-session-encrypted")) {
      try {
        return { status: res.status, body: unwrapMessage(session, res.body) };
      } catch (err) {
        throw new WinRmError("protocol", `WinRM sent an encrypted answer we could not open: ${errorMessage(err)}`, res.status);
      }
    }
    return { status: res.status, body: res.body.toString("utf8") };
  }

  /**
   * NEGOTIATE → 401 with the CHALLENGE → AUTHENTICATE, all on one connection with empty bodies
   * (as WinRM clients do before sealing), then the session keys for sealing every message.
   */
  private async handshake(): Promise<void> {
    const empty = Buffer.alloc(0);
    const negotiate = (): string => `${this.scheme} ${negotiateMessage().toString("base64")}`;
    let r1 = await this.send(empty, CONTENT_TYPE, negotiate());
    let offers = parseAuthenticate(r1.headers["www-authenticate"]);
    let challenge = offers.find((o) => o.token && o.scheme.toLowerCase() === this.scheme.toLowerCase());
    if (r1.status === 401 && !challenge) {
      // The server ignored our scheme; start over with one it offers.
      const offered = chooseScheme(offers);
      if (!offered || offered === this.scheme) {
        throw new WinRmError(
          "auth",
          `WinRM offers no NTLM/Negotiate authentication (offered: ${offers.map((o) => o.scheme).join(", ") || "none"}); enable Negotiate on the WinRM service`,
          401,
        );
      }
      this.scheme = offered;
      r1 = await this.send(empty, CONTENT_TYPE, negotiate());
      offers = parseAuthenticate(r1.headers["www-authenticate"]);
      challenge = offers.find((o) => o.token && o.scheme.toLowerCase() === this.scheme.toLowerCase());
    }
    if (r1.status !== 401) throw new WinRmError("protocol", `WinRM answered the NTLM negotiation with HTTP ${r1.status}`, r1.status);
    if (!challenge?.token) throw new WinRmError("auth", "WinRM sent no NTLM challenge", 401);
    let auth: ReturnType<typeof authenticateMessage>;
    try {
      auth = authenticateMessage({ challenge: parseChallenge(Buffer.from(challenge.token, "base64")), ...this.identity });
    } catch (err) {
      throw new WinRmError("protocol", errorMessage(err), 401);
    }
    const r3 = await this.send(empty, CONTENT_TYPE, `${this.scheme} ${auth.message.toString("base64")}`);
    if (r3.status === 401) {
      throw new WinRmError(
        "auth",
        `WinRM refused the credentials of user "${this.opts.username}" (NTLM); check the instance's service_state credentials`,
        401,
      );
    }
    if (r3.status >= 400) throw new WinRmError("protocol", `WinRM answered the NTLM authentication with HTTP ${r3.status}`, r3.status);
    // Without sealing granted, messages go in the clear (only works where the service allows it).
    this.session = NtlmSession.canSeal(auth.flags) ? new NtlmSession(auth.exportedSessionKey, auth.flags) : undefined;
    this.authenticated = true;
  }

  private async send(
    body: Buffer,
    contentType: string,
    authorization: string | undefined,
  ): Promise<{ status: number; body: Buffer; headers: Record<string, string | string[] | undefined> }> {
    const headers: Record<string, string> = { "content-type": contentType, "user-agent": "forgejo-nsc WinRM" };
    if (authorization) headers.authorization = authorization;
    try {
      const res = await this.http.request({ path: "/wsman", method: "POST", headers, body });
      const answer = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, body: answer, headers: res.headers };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const code = e.code ?? e.name;
      const kind = /TIMEOUT/i.test(code) ? "timeout" : "unreachable";
      throw new WinRmError(kind, `WinRM at ${this.opts.endpoint} is not reachable (${code})`);
    }
  }
}

/** Encodes a PowerShell script for `-EncodedCommand`: base64 of its UTF-16LE bytes. */
export function encodePowerShell(script: string): string {
  return Buffer.from(script, "utf16le").toString("base64");
}

/**
 * Opens a shell, retrying while WinRM is still coming up after boot (connection refused or reset,
 * timeouts, 5xx) until `deadlineMs`. Authentication failures are retried too — a fresh Windows
 * instance may refuse its account for a moment — but reported as such when time runs out.
 */
export async function openShellWithRetry(
  client: WinRmClient,
  env: Record<string, string>,
  o: { deadlineMs: number; intervalMs?: number; logger?: Logger; now?: () => number; signal?: AbortSignal },
): Promise<string> {
  const now = o.now ?? Date.now;
  const interval = o.intervalMs ?? 3_000;
  let attempt = 0;
  for (;;) {
    attempt++;
    try {
      return await client.openShell(env);
    } catch (err) {
      const e = err instanceof WinRmError ? err : new WinRmError("protocol", errorMessage(err));
      const retryable =
        e.kind === "unreachable" || e.kind === "timeout" || e.kind === "auth" || (e.httpStatus !== undefined && e.httpStatus >= 500);
      if (!retryable || now() + interval > o.deadlineMs || o.signal?.aborted) {
        throw new WinRmError(e.kind, `${e.message} (after ${attempt} attempt${attempt === 1 ? "" : "s"})`, e.httpStatus, e.wsmanCode);
      }
      o.logger?.debug({ attempt, kind: e.kind }, "WinRM not ready yet; retrying");
      await new Promise((r) => setTimeout(r, interval));
    }
  }
}
