import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { create_NT_hashed_password } from "httpntlm/ntlm.js";

/**
 * The server side of NTLM for the fake WinRM endpoint, written independently of the client's code
 * from MS-NLMP: builds the CHALLENGE (type 2) granting the requested flags it supports, checks the
 * AUTHENTICATE (type 3) — NTLMv2 responses verified cryptographically (NTProofStr =
 * HMAC-MD5(NTOWFv2, ServerChallenge ‖ blob)), so a wrong password fails; NTLMv1-style 24-byte
 * responses refused as NTLMv2-only Windows does — recovers the exchanged session key, and seals and
 * unseals messages with the server-side keys.
 */

const SIGNATURE = Buffer.from("NTLMSSP\0", "latin1");
const F_UNICODE = 0x1;
const F_SIGN = 0x10;
const F_SEAL = 0x20;
const F_KEY_EXCH = 0x40000000;
/** What this "server" is willing to grant. */
const SUPPORTED =
  (0x00000001 /* Unicode */ |
    0x00000004 /* RequestTarget */ |
    F_SIGN |
    F_SEAL |
    0x00000200 /* NTLM */ |
    0x00008000 /* AlwaysSign */ |
    0x00080000 /* ExtendedSessionSecurity */ |
    0x00800000 /* TargetInfo */ |
    0x02000000 /* Version */ |
    0x20000000 /* 128 */ |
    F_KEY_EXCH |
    0x80000000) /* 56 */ >>>
  0;

export function messageType(token: Buffer): number | undefined {
  if (token.length < 12 || !token.subarray(0, 8).equals(SIGNATURE)) return undefined;
  return token.readUInt32LE(8);
}

function avPair(id: number, value: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(id, 0);
  h.writeUInt16LE(value.length, 2);
  return Buffer.concat([h, value]);
}

/** The flags a NEGOTIATE asked for. */
export function requestedFlags(negotiate: Buffer): number {
  return negotiate.length >= 16 ? negotiate.readUInt32LE(12) : 0;
}

export function challengeMessage(serverChallenge: Buffer, requested: number, computer = "FAKEWIN"): Buffer {
  const name = Buffer.from(computer, "utf16le");
  const timestamp = Buffer.alloc(8);
  timestamp.writeBigUInt64LE((BigInt(Date.now()) + 11_644_473_600_000n) * 10_000n);
  const targetInfo = Buffer.concat([avPair(2, name), avPair(1, name), avPair(7, timestamp), avPair(0, Buffer.alloc(0))]);
  const flags = ((requested & SUPPORTED) | 0x00800000 | 0x00020000 /* TargetTypeServer */ | F_UNICODE) >>> 0;
  const header = Buffer.alloc(56);
  SIGNATURE.copy(header, 0);
  header.writeUInt32LE(2, 8);
  header.writeUInt16LE(name.length, 12);
  header.writeUInt16LE(name.length, 14);
  header.writeUInt32LE(56, 16);
  header.writeUInt32LE(flags, 20);
  serverChallenge.copy(header, 24);
  header.writeUInt16LE(targetInfo.length, 40);
  header.writeUInt16LE(targetInfo.length, 42);
  header.writeUInt32LE(56 + name.length, 44);
  header.writeUInt8(10, 48);
  header.writeUInt16LE(19041, 50);
  header.writeUInt8(15, 55);
  return Buffer.concat([header, name, targetInfo]);
}

export function newChallenge(): Buffer {
  return randomBytes(8);
}

function field(msg: Buffer, at: number): Buffer {
  const len = msg.readUInt16LE(at);
  const off = msg.readUInt32LE(at + 4);
  if (off + len > msg.length) throw new Error("security buffer points outside the message");
  return msg.subarray(off, off + len);
}

export interface Type3Fields {
  user: string;
  domain: string;
  ntResponse: Buffer;
  encryptedSessionKey: Buffer;
  flags: number;
}

export function parseType3(msg: Buffer): Type3Fields {
  if (messageType(msg) !== 3 || msg.length < 64) throw new Error("not an NTLM AUTHENTICATE message");
  const flags = msg.readUInt32LE(60);
  const str = (b: Buffer): string => b.toString(flags & F_UNICODE ? "utf16le" : "latin1");
  return { ntResponse: field(msg, 20), domain: str(field(msg, 28)), user: str(field(msg, 36)), encryptedSessionKey: field(msg, 52), flags };
}

const hmac = (key: Buffer, ...parts: Buffer[]): Buffer => parts.reduce((h, p) => h.update(p), createHmac("md5", key)).digest();
const md5 = (...parts: Buffer[]): Buffer => parts.reduce((h, p) => h.update(p), createHash("md5")).digest();

function rc4(key: Buffer): (data: Buffer) => Buffer {
  const s = Array.from({ length: 256 }, (_, k) => k);
  let j = 0;
  for (let i = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) % 256;
    const t = s[i]!;
    s[i] = s[j]!;
    s[j] = t;
  }
  let a = 0;
  let b = 0;
  return (data) =>
    Buffer.from(
      data.map((byte) => {
        a = (a + 1) % 256;
        b = (b + s[a]!) % 256;
        const t = s[a]!;
        s[a] = s[b]!;
        s[b] = t;
        return byte ^ s[(s[a]! + s[b]!) % 256]!;
      }),
    );
}

/** Server-side sealing: receives with the client-to-server keys, sends with the server-to-client keys. */
export class ServerSession {
  private readonly recvSeal: (d: Buffer) => Buffer;
  private readonly sendSeal: (d: Buffer) => Buffer;
  private readonly recvSign: Buffer;
  private readonly sendSign: Buffer;
  private recvSeq = 0;
  private sendSeq = 0;

  constructor(exportedSessionKey: Buffer) {
    const k = (what: string) => md5(exportedSessionKey, Buffer.from(`session key to ${what} key magic constant\0`, "latin1"));
    this.recvSign = k("client-to-server signing");
    this.sendSign = k("server-to-client signing");
    this.recvSeal = rc4(k("client-to-server sealing"));
    this.sendSeal = rc4(k("server-to-client sealing"));
  }

  open(signature: Buffer, sealed: Buffer): Buffer {
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.recvSeq++);
    const plain = this.recvSeal(sealed);
    const checksum = this.recvSeal(hmac(this.recvSign, seq, plain).subarray(0, 8));
    const expected = Buffer.concat([Buffer.from([1, 0, 0, 0]), checksum, seq]);
    if (signature.length !== 16 || !timingSafeEqual(signature, expected)) throw new Error("bad message signature");
    return plain;
  }

  close(plain: Buffer): { signature: Buffer; sealed: Buffer } {
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.sendSeq++);
    const sealed = this.sendSeal(plain);
    const checksum = this.sendSeal(hmac(this.sendSign, seq, plain).subarray(0, 8));
    return { signature: Buffer.concat([Buffer.from([1, 0, 0, 0]), checksum, seq]), sealed };
  }
}

export type Type3Verdict =
  { ok: true; user: string; domain: string; session?: ServerSession } | { ok: false; reason: string; user?: string };

export function verifyType3(msg: Buffer, serverChallenge: Buffer, expected: { username: string; password: string }): Type3Verdict {
  let t3: Type3Fields;
  try {
    t3 = parseType3(msg);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  if (t3.user.toLowerCase() !== expected.username.toLowerCase()) return { ok: false, reason: `unknown user "${t3.user}"`, user: t3.user };
  if (t3.ntResponse.length <= 24) return { ok: false, reason: "NTLMv1 responses are not accepted", user: t3.user };
  const ntowfv2 = hmac(create_NT_hashed_password(expected.password), Buffer.from(t3.user.toUpperCase() + t3.domain, "utf16le"));
  const proof = t3.ntResponse.subarray(0, 16);
  const expectedProof = hmac(ntowfv2, serverChallenge, t3.ntResponse.subarray(16));
  if (!timingSafeEqual(proof, expectedProof)) return { ok: false, reason: "wrong password (NTProofStr mismatch)", user: t3.user };
  const sessionBaseKey = hmac(ntowfv2, proof);
  const sealing =
    (t3.flags & (F_SEAL | F_SIGN | F_KEY_EXCH)) === (F_SEAL | F_SIGN | F_KEY_EXCH) >>> 0 && t3.encryptedSessionKey.length === 16;
  const session = sealing ? new ServerSession(rc4(sessionBaseKey)(t3.encryptedSessionKey)) : undefined;
  return { ok: true, user: t3.user, domain: t3.domain, ...(session ? { session } : {}) };
}

const BOUNDARY = "--Encrypted Boundary";
export const ENCRYPTED_TYPE = 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"';

/** Parses WinRM's multipart/encrypted body and opens it (throws on any mismatch). */
export function openBody(session: ServerSession, body: Buffer): string {
  const text = body.toString("latin1");
  if (!text.startsWith(`${BOUNDARY}\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n`))
    throw new Error("first part is not HTTP-SPNEGO-session-encrypted");
  const length = Number(/\tOriginalContent: type=application\/soap\+xml;charset=UTF-8;Length=(\d+)\r\n/.exec(text)?.[1] ?? NaN);
  const marker = `${BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n`;
  const at = text.indexOf(marker);
  if (at < 0 || !text.endsWith(`${BOUNDARY}--\r\n`)) throw new Error("missing octet-stream part or end boundary");
  const payload = body.subarray(at + marker.length, body.length - `${BOUNDARY}--\r\n`.length);
  const sigLen = payload.readUInt32LE(0);
  const plain = session.open(payload.subarray(4, 4 + sigLen), payload.subarray(4 + sigLen));
  if (plain.length !== length) throw new Error(`OriginalContent length ${length} does not match ${plain.length}`);
  return plain.toString("utf8");
}

export function sealBody(session: ServerSession, xml: string): Buffer {
  const plain = Buffer.from(xml, "utf8");
  const { signature, sealed } = session.close(plain);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(16);
  return Buffer.concat([
    Buffer.from(
      `${BOUNDARY}\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=${plain.length}\r\n${BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n`,
      "latin1",
    ),
    len,
    signature,
    sealed,
    Buffer.from(`${BOUNDARY}--\r\n`, "latin1"),
  ]);
}
