/**
 * HTTP side of the NTLM handshake (NEGOTIATE → 401 with CHALLENGE → AUTHENTICATE; the messages
 * are in ntlm-session.ts). WinRM advertises `Negotiate`; a raw NTLM token inside Negotiate is
 * accepted by Windows (SPNEGO lets the first token be NTLMSSP), so we answer in whichever scheme
 * the server offers.
 */

export type AuthScheme = "Negotiate" | "NTLM";

export interface NtlmIdentity {
  username: string;
  password: string;
  domain: string;
}

/** `DOMAIN\user` or `user` (a local account: empty domain; `.\user` likewise). */
export function ntlmIdentity(username: string, password: string): NtlmIdentity {
  const bs = username.indexOf("\\");
  if (bs >= 0) {
    const domain = username.slice(0, bs);
    return { username: username.slice(bs + 1), password, domain: domain === "." ? "" : domain };
  }
  return { username, password, domain: "" };
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
