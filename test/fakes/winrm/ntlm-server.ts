import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { create_NT_hashed_password } from "httpntlm/ntlm.js";

/**
 * The server side of NTLM for the fake WinRM endpoint: builds the CHALLENGE (type 2) message and
 * checks the AUTHENTICATE (type 3) message per MS-NLMP. NTLMv2 responses are verified
 * cryptographically (NTProofStr = HMAC-MD5(NTOWFv2, ServerChallenge ‖ blob)), so a wrong password
 * fails; NTLMv1-style 24-byte responses are refused as Windows does with NTLMv2-only policies.
 */

const SIGNATURE = Buffer.from("NTLMSSP\0", "latin1");
const FLAGS =
  0x00000001 /* Unicode */ |
  0x00000004 /* RequestTarget */ |
  0x00000200 /* NTLM */ |
  0x00008000 /* AlwaysSign */ |
  0x00020000 /* TargetTypeServer */ |
  0x00080000 /* ExtendedSessionSecurity */ |
  0x00800000 /* TargetInfo */ |
  0x02000000 /* Version */ |
  0x20000000 /* 128 */ |
  0x80000000; /* 56 */

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

export function challengeMessage(serverChallenge: Buffer, computer = "FAKEWIN"): Buffer {
  const name = Buffer.from(computer, "utf16le");
  const targetInfo = Buffer.concat([avPair(2, name), avPair(1, name), avPair(0, Buffer.alloc(0))]);
  const header = Buffer.alloc(56);
  SIGNATURE.copy(header, 0);
  header.writeUInt32LE(2, 8);
  header.writeUInt16LE(name.length, 12);
  header.writeUInt16LE(name.length, 14);
  header.writeUInt32LE(56, 16);
  header.writeUInt32LE(FLAGS >>> 0, 20);
  serverChallenge.copy(header, 24);
  header.writeUInt16LE(targetInfo.length, 40);
  header.writeUInt16LE(targetInfo.length, 42);
  header.writeUInt32LE(56 + name.length, 44);
  header.writeUInt8(10, 48); // Windows 10 version block
  header.writeUInt8(0, 49);
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
  workstation: string;
  ntResponse: Buffer;
  lmResponse: Buffer;
  flags: number;
}

export function parseType3(msg: Buffer): Type3Fields {
  if (messageType(msg) !== 3 || msg.length < 64) throw new Error("not an NTLM AUTHENTICATE message");
  const flags = msg.readUInt32LE(60);
  const unicode = (flags & 1) !== 0;
  const str = (b: Buffer): string => b.toString(unicode ? "utf16le" : "latin1");
  return {
    lmResponse: field(msg, 12),
    ntResponse: field(msg, 20),
    domain: str(field(msg, 28)),
    user: str(field(msg, 36)),
    workstation: str(field(msg, 44)),
    flags,
  };
}

export type Type3Verdict = { ok: true; user: string; domain: string } | { ok: false; reason: string; user?: string };

export function verifyType3(msg: Buffer, serverChallenge: Buffer, expected: { username: string; password: string }): Type3Verdict {
  let t3: Type3Fields;
  try {
    t3 = parseType3(msg);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  if (t3.user.toLowerCase() !== expected.username.toLowerCase()) return { ok: false, reason: `unknown user "${t3.user}"`, user: t3.user };
  if (t3.ntResponse.length <= 24) return { ok: false, reason: "NTLMv1 responses are not accepted", user: t3.user };
  const ntHash = create_NT_hashed_password(expected.password);
  const ntowfv2 = createHmac("md5", ntHash).update(Buffer.from(t3.user.toUpperCase() + t3.domain, "utf16le")).digest();
  const proof = t3.ntResponse.subarray(0, 16);
  const blob = t3.ntResponse.subarray(16);
  const expectedProof = createHmac("md5", ntowfv2).update(Buffer.concat([serverChallenge, blob])).digest();
  if (!timingSafeEqual(proof, expectedProof)) return { ok: false, reason: "wrong password (NTProofStr mismatch)", user: t3.user };
  return { ok: true, user: t3.user, domain: t3.domain };
}
