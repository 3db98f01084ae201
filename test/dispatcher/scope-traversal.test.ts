import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ForgejoClient } from "../../src/forgejo/client.js";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { waitFor } from "../helpers/wait.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/**
 * Issue 10, item 1: owner/name were any string and dot segments were resolved by the URL, so
 * `owner: ".."` with `allow_scopes: ["repo:*"]` registered an instance-level runner.
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    forgejo: { repos: [{ owner: "acme", name: "app" }] },
    simulate: false,
    yaml: `namespace:\n  allow_scopes: ["repo:*"]\n`,
  });
});
afterAll(async () => {
  await h?.close();
});

const repo = (owner: string, name: string) => ({ labels: ["namespace-profile-linux-small"], scope: { level: "repository", owner, name } });

/** Every Forgejo call the dispatcher made outside /repos/acme/…: none may exist. */
const outsideRepoScope = () => h.forgejo.calls.filter((c) => c.path !== "/api/v1/version" && !c.path.startsWith("/api/v1/repos/acme/app/"));

describe("scope names are validated as Forgejo validates them", () => {
  it.each([
    ["..", "admin"],
    [".", "admin"],
    ["acme", ".."],
    ["acme", "."],
    ["..%2f..", "admin"],
    ["%2e%2e", "admin"],
    ["acme/app", "x"],
    ["acme", "app/../../../admin"],
    ["acme\\..", "admin"],
    ["acme", "app?x=1"],
    ["acme", "app#x"],
    [" acme", "app"],
  ])("owner %j name %j is 400 and no request leaves the repository scope", async (owner, name) => {
    h.forgejo.clearCalls();
    const r = await h.request("POST", "/api/v1/dispatch", repo(owner, name));
    // Whatever the answer, give any launch time to happen before judging what was sent.
    await waitFor(async () => (await h.store.countRunners(["pending", "launching"])) === 0, { what: "no launch in progress" });
    expect(outsideRepoScope()).toEqual([]);
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_request");
    expect(r.body.message).toMatch(/scope\.(owner|name)/);
    expect(r.body.message).toMatch(/letters, digits, "-", "_" and "\."/);
  });

  it("a valid repository scope still goes through", async () => {
    h.forgejo.clearCalls();
    const r = await h.request("POST", "/api/v1/dispatch", repo("acme", "app"));
    expect(r.status).toBe(202);
    await waitFor(() => h.forgejo.callsTo("/api/v1/repos/acme/app/actions/runners").length > 0, { what: "a registration in acme/app" });
    expect(outsideRepoScope()).toEqual([]);
  });
});

describe("the Forgejo client never sends a path that leaves its scope", () => {
  it("refuses a scope that did not pass the schema instead of letting the URL resolve it", async () => {
    const client = new ForgejoClient({ baseUrl: h.forgejo.url, token: FAKE_ADMIN_TOKEN, timeoutMs: 2000, logger: captureLogger().logger });
    h.forgejo.clearCalls();
    await expect(
      client.registerRunner({ level: "repository", owner: "..", name: "admin" }, { name: "x", ephemeral: true }),
    ).rejects.toThrow(/not a valid Forgejo owner name/);
    await expect(client.listRunners({ level: "organization", owner: "." })).rejects.toThrow(/not a valid Forgejo owner name/);
    expect(h.forgejo.calls).toEqual([]);
  });
});
