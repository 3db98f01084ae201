import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { create_NT_hashed_password, parseType2Message } from "httpntlm/ntlm.js";

/**
 * NTLMv2 with session security (MS-NLMP §3.1.5, §3.4): the NEGOTIATE and AUTHENTICATE messages that
 * ask for signing and sealing with a key exchange, and the sealing of WinRM messages afterwards.
 * WinRM over plain HTTP refuses unencrypted bodies unless the service was reconfigured
 * (AllowUnencrypted=false is the Windows default), and httpntlm's message builder cannot negotiate
 * session security, so the two messages are built here; httpntlm supplies the MD4 password hash
 * (Node's OpenSSL 3 has no MD4) and the CHALLENGE parsing. Checked against MS-NLMP §4.2.4's vectors.
 */

export const FLAGS = {
  UNICODE: 0x00000001,
  REQUEST_TARGET: 0x00000004,
  SIGN: 0x00000010,
  SEAL: 0x00000020,
  NTLM: 0x00000200,
  ALWAYS_SIGN: 0x00008000,
  EXTENDED_SESSIONSECURITY: 0x00080000,
  TARGET_INFO: 0x00800000,
  VERSION: 0x02000000,
  N128: 0x20000000,
  KEY_EXCH: 0x40000000,
  N56: 0x80000000,
} as const;

/** What we ask for in NEGOTIATE; the CHALLENGE answers with the subset the server grants. */
export const CLIENT_FLAGS =
  (FLAGS.UNICODE |
    FLAGS.REQUEST_TARGET |
    FLAGS.SIGN |
    FLAGS.SEAL |
    FLAGS.NTLM |
    FLAGS.ALWAYS_SIGN |
    FLAGS.EXTENDED_SESSIONSECURITY |
    FLAGS.TARGET_INFO |
    FLAGS.VERSION |
    FLAGS.N128 |
    FLAGS.KEY_EXCH |
    FLAGS.N56) >>>
  0;

const SIGNATURE = Buffer.from("NTLMSSP\0", "latin1");
// Windows 10 build 19041, NTLM revision 15: informational only.
const VERSION = Buffer.from([10, 0, 0x61, 0x4a, 0, 0, 0, 15]);

export function md5(...parts: Buffer[]): Buffer {
  const h = createHash("md5");
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmacMd5(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac("md5", key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** RC4 as a stream: one instance per direction, state kept across messages (MS-NLMP §3.4.4). */
export class Rc4 {
  private readonly s = new Uint8Array(256);
  private i = 0;
  private j = 0;
  constructor(key: Buffer) {
    for (let k = 0; k < 256; k++) this.s[k] = k;
    let j = 0;
    for (let k = 0; k < 256; k++) {
      j = (j + this.s[k]! + key[k % key.length]!) & 255;
      [this.s[k], this.s[j]] = [this.s[j]!, this.s[k]!];
    }
  }
  update(data: Buffer): Buffer {
    const out = Buffer.alloc(data.length);
    const s = this.s;
    for (let k = 0; k < data.length; k++) {
      this.i = (this.i + 1) & 255;
      this.j = (this.j + s[this.i]!) & 255;
      [s[this.i], s[this.j]] = [s[this.j]!, s[this.i]!];
      out[k] = data[k]! ^ s[(s[this.i]! + s[this.j]!) & 255]!;
    }
    return out;
  }
}

function securityBuffer(into: Buffer, at: number, length: number, offset: number): void {
  into.writeUInt16LE(length, at);
  into.writeUInt16LE(length, at + 2);
  into.writeUInt32LE(offset, at + 4);
}

/** NEGOTIATE (type 1): no domain or workstation, our flags, a version. */
export function negotiateMessage(flags = CLIENT_FLAGS): Buffer {
  const m = Buffer.alloc(40);
  SIGNATURE.copy(m, 0);
  m.writeUInt32LE(1, 8);
  m.writeUInt32LE(flags >>> 0, 12);
  securityBuffer(m, 16, 0, 40);
  securityBuffer(m, 24, 0, 40);
  VERSION.copy(m, 32);
  return m;
}

export interface Challenge {
  flags: number;
  serverChallenge: Buffer;
  targetInfo: Buffer;
}

export function parseChallenge(token: Buffer): Challenge {
  let failure: Error | undefined;
  const t2 = parseType2Message(`NTLM ${token.toString("base64")}`, (err) => {
    failure = err;
  });
  if (!t2) throw new Error(`the server's NTLM challenge could not be read (${failure?.message ?? "not a type 2 message"})`);
  return {
    flags: t2.negotiateFlags >>> 0,
    serverChallenge: Buffer.from(t2.serverChallenge),
    targetInfo: Buffer.from(t2.targetInfo ?? Buffer.alloc(0)),
  };
}

/** The MsvAvTimestamp of a target info block (AV pair 7), if the server sent one. */
function avTimestamp(targetInfo: Buffer): Buffer | undefined {
  for (let at = 0; at + 4 <= targetInfo.length;) {
    const id = targetInfo.readUInt16LE(at);
    const len = targetInfo.readUInt16LE(at + 2);
    if (id === 0) return undefined;
    if (id === 7 && len === 8) return targetInfo.subarray(at + 4, at + 12);
    at += 4 + len;
  }
  return undefined;
}

function fileTimeNow(): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE((BigInt(Date.now()) + 11_644_473_600_000n) * 10_000n);
  return b;
}

export function ntowfv2(password: string, user: string, domain: string): Buffer {
  return hmacMd5(create_NT_hashed_password(password), Buffer.from(user.toUpperCase() + domain, "utf16le"));
}

export interface AuthenticateInput {
  challenge: Challenge;
  username: string;
  password: string;
  domain: string;
  /** Fixed only by tests (MS-NLMP vectors); random otherwise. */
  clientChallenge?: Buffer;
  timestamp?: Buffer;
  exportedSessionKey?: Buffer;
}

export interface Authenticated {
  message: Buffer;
  flags: number;
  exportedSessionKey: Buffer;
  ntProofStr: Buffer;
  sessionBaseKey: Buffer;
}

/** AUTHENTICATE (type 3) with an NTLMv2 response and, when KEY_EXCH was granted, a fresh session key. */
export function authenticateMessage(a: AuthenticateInput): Authenticated {
  const flags = (a.challenge.flags & CLIENT_FLAGS) >>> 0;
  const responseKey = ntowfv2(a.password, a.username, a.domain);
  const clientChallenge = a.clientChallenge ?? randomBytes(8);
  const timestamp = a.timestamp ?? avTimestamp(a.challenge.targetInfo) ?? fileTimeNow();
  const temp = Buffer.concat([
    Buffer.from([1, 1, 0, 0]),
    Buffer.alloc(4),
    timestamp,
    clientChallenge,
    Buffer.alloc(4),
    a.challenge.targetInfo,
    Buffer.alloc(4),
  ]);
  const ntProofStr = hmacMd5(responseKey, a.challenge.serverChallenge, temp);
  const ntResponse = Buffer.concat([ntProofStr, temp]);
  const lmResponse = Buffer.concat([hmacMd5(responseKey, a.challenge.serverChallenge, clientChallenge), clientChallenge]);
  const sessionBaseKey = hmacMd5(responseKey, ntProofStr);
  let exportedSessionKey: Buffer = sessionBaseKey;
  let encryptedKey: Buffer = Buffer.alloc(0);
  if (flags & FLAGS.KEY_EXCH) {
    exportedSessionKey = a.exportedSessionKey ?? randomBytes(16);
    encryptedKey = new Rc4(sessionBaseKey).update(exportedSessionKey);
  }
  const domain = Buffer.from(a.domain, "utf16le");
  const user = Buffer.from(a.username, "utf16le");
  const workstation = Buffer.alloc(0);
  const header = Buffer.alloc(72);
  SIGNATURE.copy(header, 0);
  header.writeUInt32LE(3, 8);
  let offset = 72;
  const fields: [number, Buffer][] = [
    [28, domain],
    [36, user],
    [44, workstation],
    [12, lmResponse],
    [20, ntResponse],
    [52, encryptedKey],
  ];
  for (const [at, data] of fields) {
    securityBuffer(header, at, data.length, offset);
    offset += data.length;
  }
  header.writeUInt32LE(flags, 60);
  VERSION.copy(header, 64);
  const message = Buffer.concat([header, domain, user, workstation, lmResponse, ntResponse, encryptedKey]);
  return { message, flags, exportedSessionKey, ntProofStr, sessionBaseKey };
}

const magic = (text: string): Buffer => Buffer.from(`session key to ${text} key magic constant\0`, "latin1");

/**
 * Sealing and unsealing after authentication (extended session security, 128-bit keys): the
 * client seals with the client-to-server keys and unseals with the server-to-client keys, each
 * direction with its own RC4 stream and sequence number.
 */
export class NtlmSession {
  private readonly sendSign: Buffer;
  private readonly recvSign: Buffer;
  private readonly sendSeal: Rc4;
  private readonly recvSeal: Rc4;
  private sendSeq = 0;
  private recvSeq = 0;

  constructor(
    exportedSessionKey: Buffer,
    readonly flags: number,
    role: "client" | "server" = "client",
  ) {
    const c2s = {
      sign: md5(exportedSessionKey, magic("client-to-server signing")),
      seal: md5(exportedSessionKey, magic("client-to-server sealing")),
    };
    const s2c = {
      sign: md5(exportedSessionKey, magic("server-to-client signing")),
      seal: md5(exportedSessionKey, magic("server-to-client sealing")),
    };
    const [send, recv] = role === "client" ? [c2s, s2c] : [s2c, c2s];
    this.sendSign = send.sign;
    this.recvSign = recv.sign;
    this.sendSeal = new Rc4(send.seal);
    this.recvSeal = new Rc4(recv.seal);
  }

  /** Whether the server granted what sealing needs. */
  static canSeal(flags: number): boolean {
    const need = FLAGS.SIGN | FLAGS.SEAL | FLAGS.EXTENDED_SESSIONSECURITY | FLAGS.KEY_EXCH | FLAGS.N128;
    return (flags & need) >>> 0 === need >>> 0;
  }

  seal(plain: Buffer): { signature: Buffer; sealed: Buffer } {
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.sendSeq++);
    const sealed = this.sendSeal.update(plain);
    const checksum = this.sendSeal.update(hmacMd5(this.sendSign, seq, plain).subarray(0, 8));
    return { signature: Buffer.concat([Buffer.from([1, 0, 0, 0]), checksum, seq]), sealed };
  }

  unseal(signature: Buffer, sealed: Buffer): Buffer {
    if (signature.length !== 16 || signature.readUInt32LE(0) !== 1) throw new Error("the NTLM message signature is malformed");
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(this.recvSeq++);
    const plain = this.recvSeal.update(sealed);
    const checksum = this.recvSeal.update(hmacMd5(this.recvSign, seq, plain).subarray(0, 8));
    const expected = Buffer.concat([Buffer.from([1, 0, 0, 0]), checksum, seq]);
    if (!timingSafeEqual(expected, signature)) throw new Error("the NTLM message signature does not match (tampered, or out of sequence)");
    return plain;
  }
}

/** WinRM's multipart/encrypted body (MS-WSMV §2.2.9.1): one part describing, one carrying the sealed SOAP. */
export const ENCRYPTED_CONTENT_TYPE =
  'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"';
const BOUNDARY = "--Encrypted Boundary";

export function wrapMessage(session: NtlmSession, xml: string): Buffer {
  const plain = Buffer.from(xml, "utf8");
  const { signature, sealed } = session.seal(plain);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(signature.length);
  return Buffer.concat([
    Buffer.from(
      `${BOUNDARY}\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n` +
        `\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=${plain.length}\r\n` +
        `${BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n`,
      "latin1",
    ),
    len,
    signature,
    sealed,
    Buffer.from(`${BOUNDARY}--\r\n`, "latin1"),
  ]);
}

/** The SOAP text of a multipart/encrypted body; throws when it is malformed or its signature is wrong. */
export function unwrapMessage(session: NtlmSession, body: Buffer): string {
  const marker = Buffer.from("\tContent-Type: application/octet-stream\r\n", "latin1");
  const header = body.subarray(0, Math.min(body.length, 512)).toString("latin1");
  const lengthMatch = /Length=(\d+)/.exec(header);
  const at = body.indexOf(marker);
  if (!lengthMatch || at < 0) throw new Error("the encrypted WinRM message has no octet-stream part");
  let payload = body.subarray(at + marker.length);
  const end = Buffer.from(`${BOUNDARY}--\r\n`, "latin1");
  if (payload.subarray(payload.length - end.length).equals(end)) payload = payload.subarray(0, payload.length - end.length);
  const sigLen = payload.readUInt32LE(0);
  const plain = session.unseal(payload.subarray(4, 4 + sigLen), payload.subarray(4 + sigLen));
  if (plain.length !== Number(lengthMatch[1])) throw new Error("the encrypted WinRM message has the wrong length");
  return plain.toString("utf8");
}
