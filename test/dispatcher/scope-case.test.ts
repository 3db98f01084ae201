import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/**
 * Issue 10, item 3: Forgejo owner and repository names are case-insensitive, scope keys were not,
 * so "Example" and "example" were two scopes (4 running under a cap of 1).
 */
let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    forgejo: {
      repos: [
        { owner: "example", name: "app" },
        { owner: "acme", name: "web" },
      ],
    },
    simulate: false,
    yaml: `namespace:\n  allow_scopes: ["repo:Example/*", "repo:example/*", "repo:Acme/Web"]\ndispatcher:\n  caps: [{scope: "repo:*", max: 1}]\n`,
  });
});
afterAll(async () => {
  await h?.close();
});

const dispatch = (owner: string, name: string, headers: Record<string, string> = {}) =>
  h.request(
    "POST",
    "/api/v1/dispatch",
    { labels: ["namespace-profile-linux-small"], scope: { level: "repository", owner, name } },
    headers,
  );

const runnerState = async (name: string) =>
  (await h.request("GET", `/api/v1/runners/${name}`)).body as { state: string; reason: string; scope_key: string };

describe("scope keys are compared in lower case", () => {
  it("owner Example and example share one per-scope cap of 1: one runs, the other waits", async () => {
    const first = await dispatch("Example", "app");
    expect(first.status).toBe(202);
    const a = first.body.runners[0].name as string;
    await waitFor(async () => (await runnerState(a)).state === "running", { what: "the first runner running" });
    const second = await dispatch("example", "APP");
    expect(second.status).toBe(202);
    const b = second.body.runners[0].name as string;
    await h.dispatcher.scheduler.pass();
    // Either it waits for the cap (fixed) or it gets launched (the bug): wait until one is known.
    const seen = await waitFor(
      async () => {
        const r = await runnerState(b);
        return r.state !== "pending" || /waiting for capacity/.test(r.reason) ? r : undefined;
      },
      { what: "the second runner to be admitted or held" },
    );
    expect(seen.state).toBe("pending");
    expect(seen.reason).toBe("waiting for capacity: cap scope repo:* (per scope) max=1 reached");
    const running = (await h.request("GET", "/api/v1/runners?state=launching,running")).body.runners as unknown[];
    expect(running).toHaveLength(1);
    expect((await runnerState(a)).scope_key).toBe("repo:example/app");
    // The list filter takes any spelling of the key.
    const filtered = (await h.request("GET", "/api/v1/runners?scope=repo:EXAMPLE/app")).body.runners as unknown[];
    expect(filtered).toHaveLength(2);
  });

  it("allow-list patterns match whatever the spelling of the pattern or the request", async () => {
    expect((await dispatch("acme", "web")).status).toBe(202);
    expect((await dispatch("ACME", "WEB")).status).toBe(202);
    expect((await dispatch("EXAMPLE", "other")).status).toBe(202);
    const denied = await dispatch("acme", "app");
    expect(denied.status).toBe(403);
    expect(denied.body.message).toBe('scope "repo:acme/app" not allowed by namespace.allow_scopes');
  });

  it("an idempotency key repeated with another spelling of the scope is the same dispatch", async () => {
    const one = await dispatch("acme", "web", { "idempotency-key": "case-key-1" });
    expect(one.status).toBe(202);
    const two = await dispatch("Acme", "WEB", { "idempotency-key": "case-key-1" });
    expect(two.status).toBe(200);
    expect(two.body.dispatch_id).toBe(one.body.dispatch_id);
  });

  it("the registration sweep lists a repository once, however its runners spelled it", async () => {
    // Two spellings the allow list "repo:Example/*" takes even when compared case-sensitively.
    expect((await dispatch("Example", "app")).status).toBe(202);
    expect((await dispatch("Example", "APP")).status).toBe(202);
    h.forgejo.clearCalls();
    await h.dispatcher.registrationSweep.run();
    const listings = h.forgejo.calls.filter(
      (c) => c.method === "GET" && /^\/api\/v1\/repos\/example\/app\/actions\/runners$/i.test(c.path),
    );
    expect(listings).toHaveLength(1);
  });
});
