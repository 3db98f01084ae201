import { createType1Message, createType3Message, parseType2Message } from "httpntlm/ntlm.js";
import type { NtlmCredentials } from "httpntlm/ntlm.js";

/**
 * The NTLM handshake over HTTP (Type 1 → 401 challenge → Type 3), with the message bodies built by
 * httpntlm's `ntlm` module. WinRM advertises `Negotiate`; a raw NTLM token inside Negotiate is
 * accepted by Windows (SPNEGO lets the first token be NTLMSSP), so we answer in whichever scheme
 * the server offers.
 */

export type AuthScheme = "Negotiate" | "NTLM";

export interface NtlmIdentity {
  username: string;
  password: string;
  domain: string;
}

/** `DOMAIN\user`, `user@domain` or `user` (a local account: empty domain). */
export function ntlmIdentity(username: string, password: string): NtlmIdentity {
  const bs = username.indexOf("\\");
  if (bs >= 0) {
    const domain = username.slice(0, bs);
    return { username: username.slice(bs + 1), password, domain: domain === "." ? "" : domain };
  }
  return { username, password, domain: "" };
}

function creds(id: NtlmIdentity): NtlmCredentials {
  // httpntlm fills defaults into the object it is given; hand it a fresh one each time.
  return { username: id.username, password: id.password, domain: id.domain, workstation: "" };
}

export function type1Header(scheme: AuthScheme, id: NtlmIdentity): string {
  return `${scheme} ${createType1Message(creds(id)).replace(/^NTLM /, "")}`;
}

/** The schemes and tokens of all WWW-Authenticate headers. */
export function parseAuthenticate(header: string | string[] | undefined): { scheme: string; token?: string }[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const out: { scheme: string; token?: string }[] = [];
  for (const v of values) {
    for (const part of v.split(",")) {
      const m = /^\s*([A-Za-z0-9_-]+)(?:\s+([A-Za-z0-9+/=]+))?\s*$/.exec(part);
      if (m) out.push(m[2] ? { scheme: m[1]!, token: m[2] } : { scheme: m[1]! });
    }
  }
  return out;
}

/** Picks the scheme to start with from a bare 401's offers: Negotiate first, as WinRM prefers. */
export function chooseScheme(offers: { scheme: string }[]): AuthScheme | undefined {
  const names = offers.map((o) => o.scheme.toLowerCase());
  if (names.includes("negotiate")) return "Negotiate";
  if (names.includes("ntlm")) return "NTLM";
  return undefined;
}

/** The Type 3 header answering the challenge token of a 401, or an Error saying what was wrong. */
export function type3Header(scheme: AuthScheme, challengeToken: string, id: NtlmIdentity): string {
  let failure: Error | undefined;
  const t2 = parseType2Message(`NTLM ${challengeToken}`, (err) => {
    failure = err;
  });
  if (!t2) throw new Error(`the server's NTLM challenge could not be read (${failure?.message ?? "not a type 2 message"})`);
  return `${scheme} ${createType3Message(t2, creds(id)).replace(/^NTLM /, "")}`;
}
