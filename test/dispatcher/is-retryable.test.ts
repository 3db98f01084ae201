import { describe, expect, it } from "vitest";
import { isRetryable } from "../../src/dispatcher/context.js";
import { ForgejoApiError } from "../../src/forgejo/errors.js";
import type { ForgejoErrorInit } from "../../src/forgejo/errors.js";
import { LaunchError } from "../../src/namespace/launcher.js";
import { NscError } from "../../src/namespace/nsc-errors.js";

const forgejo = (init: Omit<ForgejoErrorInit, "operation">) => new ForgejoApiError({ operation: "registration_token", ...init });

describe("isRetryable: which failed launch attempts are tried again", () => {
  it.each([
    ["LaunchError capacity", new LaunchError("no machine", "capacity"), true],
    ["LaunchError transient", new LaunchError("did not start", "transient", "inst-1"), true],
    ["LaunchError invalid", new LaunchError("bad label", "invalid"), false],
    ["LaunchError auth", new LaunchError("nsc not logged in", "auth"), false],
    ["Forgejo timeout", forgejo({ kind: "timeout", timeoutMs: 1000 }), true],
    ["Forgejo no connection", forgejo({ kind: "network" }), true],
    ["Forgejo HTTP 500", forgejo({ kind: "http", status: 500 }), true],
    ["Forgejo HTTP 503", forgejo({ kind: "http", status: 503 }), true],
    ["Forgejo HTTP 429", forgejo({ kind: "http", status: 429 }), true],
    ["Forgejo HTTP 401", forgejo({ kind: "http", status: 401 }), false],
    ["Forgejo HTTP 403", forgejo({ kind: "http", status: 403 }), false],
    ["Forgejo HTTP 404", forgejo({ kind: "http", status: 404 }), false],
    ["Forgejo HTTP 422", forgejo({ kind: "http", status: 422 }), false],
    ["Forgejo unsupported", forgejo({ kind: "unsupported" }), false],
    ["Forgejo bad response", forgejo({ kind: "bad_response" }), false],
    ["a plain Error", new Error("bug"), false],
    // Decided by type, not by whatever fields an error has: launchers wrap every NscError in a LaunchError.
    ["an unwrapped NscError", new NscError("ran out of capacity", "capacity", "run"), false],
    ["an object with a kind", { kind: "capacity" }, false],
    ["an object with isTransient", { isTransient: true }, false],
    ["a string", "transient", false],
    ["undefined", undefined, false],
    ["null", null, false],
  ])("%s → %s", (_what, err, retryable) => {
    expect(isRetryable(err)).toBe(retryable);
  });
});
