import { describe, expect, it } from "vitest";
import {
  CLIENT_FLAGS,
  FLAGS,
  NtlmSession,
  Rc4,
  authenticateMessage,
  md5,
  negotiateMessage,
  ntowfv2,
  parseChallenge,
  unwrapMessage,
  wrapMessage,
} from "../../src/namespace/winrm/ntlm-session.js";
import type { ServerSession } from "../fakes/winrm/ntlm-server.js";
import { challengeMessage, openBody, sealBody, verifyType3 } from "../fakes/winrm/ntlm-server.js";

// MS-NLMP §4.2.4 (NTLMv2 authentication) example values.
const V = {
  user: "User",
  domain: "Domain",
  password: "Password",
  serverChallenge: Buffer.from("0123456789abcdef", "hex"),
  clientChallenge: Buffer.from("aaaaaaaaaaaaaaaa", "hex"),
  randomSessionKey: Buffer.alloc(16, 0x55),
  time: Buffer.alloc(8),
};

function av(id: number, value: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(id, 0);
  h.writeUInt16LE(value.length, 2);
  return Buffer.concat([h, value]);
}
const targetInfo = Buffer.concat([
  av(2, Buffer.from("Domain", "utf16le")),
  av(1, Buffer.from("Server", "utf16le")),
  av(0, Buffer.alloc(0)),
]);
const flags =
  (FLAGS.KEY_EXCH |
    FLAGS.N56 |
    FLAGS.N128 |
    FLAGS.VERSION |
    FLAGS.TARGET_INFO |
    FLAGS.EXTENDED_SESSIONSECURITY |
    FLAGS.ALWAYS_SIGN |
    FLAGS.NTLM |
    FLAGS.SEAL |
    FLAGS.SIGN |
    FLAGS.UNICODE) >>>
  0;

describe("NTLMv2 against the MS-NLMP §4.2.4 test vectors", () => {
  const auth = authenticateMessage({
    challenge: { flags, serverChallenge: V.serverChallenge, targetInfo },
    username: V.user,
    password: V.password,
    domain: V.domain,
    clientChallenge: V.clientChallenge,
    timestamp: V.time,
    exportedSessionKey: V.randomSessionKey,
  });

  it("derives NTOWFv2, the NTProofStr and the session base key", () => {
    expect(ntowfv2(V.password, V.user, V.domain).toString("hex")).toBe("0c868a403bfd7a93a3001ef22ef02e3f");
    expect(auth.ntProofStr.toString("hex")).toBe("68cd0ab851e51c96aabc927bebef6a1c");
    expect(auth.sessionBaseKey.toString("hex")).toBe("8de40ccadbc14a82f15cb0ad0de95ca3");
  });

  it("encrypts the random session key and writes the LMv2 response", () => {
    const m = auth.message;
    const fieldAt = (at: number) => m.subarray(m.readUInt32LE(at + 4), m.readUInt32LE(at + 4) + m.readUInt16LE(at));
    expect(fieldAt(52).toString("hex")).toBe("c5dad2544fc9799094ce1ce90bc9d03e");
    expect(fieldAt(12).toString("hex")).toBe("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa");
    expect(fieldAt(36).toString("utf16le")).toBe("User");
    expect(fieldAt(28).toString("utf16le")).toBe("Domain");
    expect(m.readUInt32LE(60)).toBe(flags);
  });

  it("seals 'Plaintext' to the published bytes and signature", () => {
    const session = new NtlmSession(V.randomSessionKey, flags);
    const { signature, sealed } = session.seal(Buffer.from("Plaintext", "utf16le"));
    expect(sealed.toString("hex")).toBe("54e50165bf1936dc996020c1811b0f06fb5f");
    expect(signature.toString("hex")).toBe("010000007fb38ec5c55d497600000000");
    expect(
      md5(V.randomSessionKey, Buffer.from("session key to client-to-server sealing key magic constant\0", "latin1")).toString("hex"),
    ).toBe("59f600973cc4960a25480a7c196e4c58");
  });

  it("RC4 keeps its stream across calls", () => {
    const key = Buffer.from("Key");
    const whole = new Rc4(key).update(Buffer.from("Plaintext"));
    expect(whole.toString("hex")).toBe("bbf316e8d940af0ad3"); // the classic RC4 test vector
    const split = new Rc4(key);
    expect(Buffer.concat([split.update(Buffer.from("Plain")), split.update(Buffer.from("text"))])).toEqual(whole);
  });
});

describe("sealed WinRM messages between our client and the fake's independent server code", () => {
  it("round-trips in both directions with sequence numbers, and detects tampering", () => {
    const serverChallenge = Buffer.from("1122334455667788", "hex");
    const challenge = parseChallenge(challengeMessage(serverChallenge, CLIENT_FLAGS));
    expect(NtlmSession.canSeal(challenge.flags)).toBe(true);
    const auth = authenticateMessage({ challenge, username: "runneradmin", password: "pw-1", domain: "" });
    const verdict = verifyType3(auth.message, serverChallenge, { username: "runneradmin", password: "pw-1" });
    expect(verdict.ok).toBe(true);
    const server = (verdict as { session: ServerSession }).session;
    const client = new NtlmSession(auth.exportedSessionKey, auth.flags);

    for (let i = 0; i < 3; i++) {
      const xml = `<s:Envelope>request ${i} é</s:Envelope>`;
      expect(openBody(server, wrapMessage(client, xml))).toBe(xml);
      const answer = `<s:Envelope>answer ${i} ✓</s:Envelope>`;
      expect(unwrapMessage(client, sealBody(server, answer))).toBe(answer);
    }
    const body = wrapMessage(client, "<x/>");
    body[body.length - 30]! ^= 1;
    expect(() => openBody(server, body)).toThrow(/signature/);
  });

  it("a wrong password yields no session", () => {
    const serverChallenge = Buffer.from("1122334455667788", "hex");
    const challenge = parseChallenge(challengeMessage(serverChallenge, CLIENT_FLAGS));
    const auth = authenticateMessage({ challenge, username: "runneradmin", password: "wrong", domain: "" });
    expect(verifyType3(auth.message, serverChallenge, { username: "runneradmin", password: "pw-1" })).toMatchObject({ ok: false });
  });

  it("asks for sealing in NEGOTIATE", () => {
    const n = negotiateMessage();
    expect(n.subarray(0, 8).toString("latin1")).toBe("NTLMSSP\0");
    expect(n.readUInt32LE(8)).toBe(1);
    const f = n.readUInt32LE(12);
    for (const bit of [FLAGS.SIGN, FLAGS.SEAL, FLAGS.KEY_EXCH, FLAGS.N128, FLAGS.EXTENDED_SESSIONSECURITY]) expect(f & bit).toBe(bit);
  });
});
