import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { HttpError } from "./errors.js";

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * Checks `Authorization: Bearer <token>` against any of the configured tokens in constant time.
 * Meant for onRequest (before any body is read); a refusal closes the connection, so a client
 * without a token cannot keep it open by never finishing its body.
 */
export function bearerAuth(tokens: readonly string[]) {
  const expected = tokens.map(digest);
  return async function requireBearer(req: FastifyRequest, _reply: FastifyReply): Promise<void> {
    if (expected.length === 0) return;
    const header = req.headers.authorization;
    const m = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) {
      throw new HttpError(
        401,
        "unauthorized",
        "missing bearer token: send Authorization: Bearer <token> (see auth.tokens in the config)",
        undefined,
        {
          "www-authenticate": 'Bearer realm="forgejo-nsc"',
          connection: "close",
        },
      );
    }
    const given = digest(m[1] as string);
    let ok = false;
    for (const e of expected) ok = timingSafeEqual(e, given) || ok;
    if (!ok)
      throw new HttpError(401, "unauthorized", "bearer token not accepted", undefined, {
        "www-authenticate": 'Bearer realm="forgejo-nsc", error="invalid_token"',
        connection: "close",
      });
  };
}
