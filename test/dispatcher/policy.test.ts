import { describe, expect, it } from "vitest";
import { disallowedLabels, globMatch, scopeAllowed } from "../../src/dispatcher/allow.js";
import { dispatchRequestSchema } from "../../src/api/dispatch-request.js";

describe("allow lists", () => {
  it("matches globs anchored at both ends", () => {
    expect(globMatch("namespace-profile-*", "namespace-profile-linux-medium")).toBe(true);
    expect(globMatch("namespace-profile-*", "x-namespace-profile-a")).toBe(false);
    expect(globMatch("a.b", "axb")).toBe(false);
  });
  it("names every label outside the list, ignoring executor suffixes", () => {
    expect(disallowedLabels(["ok", "ok:host", "bad", "worse"], ["ok"])).toEqual(["bad", "worse"]);
    expect(disallowedLabels(["anything"], [])).toEqual([]);
  });
  it("matches scopes by key", () => {
    expect(scopeAllowed({ level: "repository", owner: "acme", name: "app" }, ["repo:acme/*"])).toBe(true);
    expect(scopeAllowed({ level: "organization", owner: "evil" }, ["repo:acme/*", "org:acme"])).toBe(false);
    expect(scopeAllowed({ level: "instance" }, [])).toBe(true);
  });
});

describe("dispatch request schema", () => {
  it("applies defaults and parses the TTL", () => {
    const r = dispatchRequestSchema.parse({ ttl: "1h30m" });
    expect(r.count).toBe(1);
    expect(r.ttl).toBe(5_400_000);
  });
  it("lists every bad field", () => {
    const r = dispatchRequestSchema.safeParse({ count: 0, ttl: "soon", labels: ["a,b"], extra: 1, env: { "1X": "v" } });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join("."));
    expect(paths).toEqual(expect.arrayContaining(["count", "ttl", "labels.0", "env.1X"]));
    expect(r.error!.issues.some((i) => i.code === "unrecognized_keys")).toBe(true);
  });
  it("needs count 1 with a job", () => {
    expect(dispatchRequestSchema.safeParse({ count: 2, job: { id: 5 } }).success).toBe(false);
    expect(dispatchRequestSchema.safeParse({ job: { id: 5, attempt: 1, handle: "9d52c7d8-aa" } }).success).toBe(true);
  });
  it("rejects TTLs over 24h", () => {
    expect(dispatchRequestSchema.safeParse({ ttl: "25h" }).success).toBe(false);
  });
});

describe("allow lists, edge by edge", () => {
  it("a dot in a pattern is a literal dot", () => {
    expect(globMatch("a.b", "ab")).toBe(false);
    expect(globMatch("a.b*", "a.bc")).toBe(true);
    expect(globMatch("(x)+", "(x)+")).toBe(true);
  });

  it("a label or scope needs to match one pattern of several, not all", () => {
    expect(disallowedLabels(["ok", "namespace-profile-x:host", "bad"], ["ok", "namespace-profile-*"])).toEqual(["bad"]);
    expect(scopeAllowed({ level: "repository", owner: "acme", name: "app" }, ["org:acme", "repo:acme/*"])).toBe(true);
    expect(scopeAllowed({ level: "organization", owner: "acme" }, ["org:acme", "repo:acme/*"])).toBe(true);
  });
});
