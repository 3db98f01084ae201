import { createHmac } from "node:crypto";
import * as crypto from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { signWebhookBody, verifyWebhookSignature } from "../../src/forgejo/webhook-signature.js";

const secret = "s3cret-webhook-key";
const body = Buffer.from(JSON.stringify({ action: "success", run: { id: 7 } }, null, 2));
/** Computed independently of the code under test. */
const good = createHmac("sha256", secret).update(body).digest("hex");

describe("signWebhookBody", () => {
  it("is lowercase hex HMAC-SHA256 of the exact bytes", () => {
    expect(signWebhookBody(body, secret)).toBe(good);
    expect(signWebhookBody(body.toString("utf8"), secret)).toBe(good);
    expect(good).toMatch(/^[0-9a-f]{64}$/);
    // RFC 4231 test case 2.
    expect(signWebhookBody("what do ya want for nothing?", "Jefe")).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });
});

describe("verifyWebhookSignature", () => {
  it("accepts X-Forgejo-Signature", () => {
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": good }, secret)).toEqual({ ok: true, header: "x-forgejo-signature" });
  });

  it("accepts X-Gitea-Signature alone (Gitea sends no X-Forgejo-*)", () => {
    expect(verifyWebhookSignature(body, { "x-gitea-signature": good }, secret)).toEqual({ ok: true, header: "x-gitea-signature" });
  });

  it("accepts X-Hub-Signature-256 with the sha256= prefix, and header names in any case", () => {
    expect(verifyWebhookSignature(body, { "X-Hub-Signature-256": `sha256=${good}` }, secret)).toEqual({
      ok: true,
      header: "x-hub-signature-256",
    });
    expect(verifyWebhookSignature(body, { "x-hub-signature-256": `SHA256=${good.toUpperCase()}` }, secret).ok).toBe(true);
  });

  it("reports missing when no signature header has a value (hook without a secret sends them empty)", () => {
    expect(verifyWebhookSignature(body, {}, secret)).toEqual({ ok: false, reason: "missing" });
    expect(
      verifyWebhookSignature(
        body,
        { "x-forgejo-signature": "", "x-gitea-signature": "", "x-hub-signature-256": "sha256=", "x-hub-signature": "sha1=" },
        secret,
      ),
    ).toEqual({ ok: false, reason: "missing" });
  });

  it("reports mismatch for a wrong secret, a changed body, a flipped digit and a wrong length", () => {
    const other = createHmac("sha256", "other").update(body).digest("hex");
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": other }, secret)).toEqual({ ok: false, reason: "mismatch" });
    expect(verifyWebhookSignature(Buffer.concat([body, Buffer.from(" ")]), { "x-forgejo-signature": good }, secret)).toEqual({
      ok: false,
      reason: "mismatch",
    });
    const flipFirst = (good[0] === "a" ? "b" : "a") + good.slice(1);
    const flipLast = good.slice(0, -1) + (good.endsWith("a") ? "b" : "a");
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": flipFirst }, secret).ok).toBe(false);
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": flipLast }, secret).ok).toBe(false);
    for (const wrongLength of [good.slice(0, 62), good + "00", good.slice(0, 63), "ab"]) {
      expect(verifyWebhookSignature(body, { "x-forgejo-signature": wrongLength }, secret)).toEqual({ ok: false, reason: "mismatch" });
    }
  });

  it("reports malformed for non-hex and for X-Hub-Signature-256 without its prefix", () => {
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": "z".repeat(64) }, secret)).toEqual({ ok: false, reason: "malformed" });
    expect(verifyWebhookSignature(body, { "x-hub-signature-256": good }, secret)).toEqual({ ok: false, reason: "malformed" });
    expect(verifyWebhookSignature(body, { "x-hub-signature-256": `sha1=${good}` }, secret)).toEqual({ ok: false, reason: "malformed" });
  });

  it("lets the first signature header with a value decide (X-Forgejo before X-Gitea before X-Hub)", () => {
    expect(
      verifyWebhookSignature(body, { "x-forgejo-signature": "00".repeat(32), "x-hub-signature-256": `sha256=${good}` }, secret).ok,
    ).toBe(false);
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": "", "x-hub-signature-256": `sha256=${good}` }, secret).ok).toBe(true);
  });

  it("takes the first value of a repeated header", () => {
    expect(verifyWebhookSignature(body, { "x-gitea-signature": [good, "00"] }, secret).ok).toBe(true);
  });

  it("refuses to run with an empty secret instead of accepting anything", () => {
    expect(() => verifyWebhookSignature(body, { "x-forgejo-signature": good }, "")).toThrow(/webhook_secret/);
  });
});

describe("constant-time comparison", () => {
  it("compares with timingSafeEqual on equal-length buffers for right and wrong lengths alike", async () => {
    vi.resetModules();
    const calls: [number, number][] = [];
    vi.doMock("node:crypto", () => ({
      ...crypto,
      timingSafeEqual: (a: Buffer, b: Buffer) => {
        calls.push([a.length, b.length]);
        return crypto.timingSafeEqual(a, b);
      },
    }));
    const mod = await import("../../src/forgejo/webhook-signature.js");
    expect(mod.verifyWebhookSignature(body, { "x-forgejo-signature": good }, secret).ok).toBe(true);
    expect(mod.verifyWebhookSignature(body, { "x-forgejo-signature": "ab" }, secret).ok).toBe(false);
    expect(mod.verifyWebhookSignature(body, { "x-forgejo-signature": "00".repeat(32) }, secret).ok).toBe(false);
    expect(calls).toEqual([
      [32, 32],
      [32, 32],
      [32, 32],
    ]);
    vi.doUnmock("node:crypto");
    vi.resetModules();
  });
});

describe("signature header values, edge by edge", () => {
  it("trims whitespace around a value; whitespace alone counts as missing", () => {
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": `  ${good}\n` }, secret)).toEqual({
      ok: true,
      header: "x-forgejo-signature",
    });
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": "  ", "x-gitea-signature": good }, secret)).toEqual({
      ok: true,
      header: "x-gitea-signature",
    });
  });

  it('a bare "sha256=" is an empty GitHub-form header only in X-Hub-Signature-256; elsewhere it is malformed', () => {
    expect(verifyWebhookSignature(body, { "x-forgejo-signature": "sha256=" }, secret)).toEqual({ ok: false, reason: "malformed" });
    expect(verifyWebhookSignature(body, { "x-hub-signature-256": "SHA256=" }, secret)).toEqual({ ok: false, reason: "missing" });
  });
});
