import { describe, expect, it } from "vitest";
import { ensureWebhook, markedUrl, markerOf, secretFingerprint } from "../../src/forgejo/hooks.js";
import type { HookSpec } from "../../src/forgejo/types.js";
import { verifyWebhookSignature } from "../../src/forgejo/webhook-signature.js";
import type { FakeForgejo, FakeHook } from "../fakes/forgejo/index.js";
import { fakeForgejoPerTest } from "../helpers/fake-forgejo-per-test.js";
import { waitFor } from "../helpers/wait.js";
import { ALL_SCOPES, INSTANCE, ORG, REPO, clientFor } from "./helpers.js";
import { startReceiver } from "./receiver.js";

const { start, own } = fakeForgejoPerTest();

const SECRET = "webhook-secret-0123456789abcdef";
const spec = (over: Partial<HookSpec> = {}): HookSpec => ({
  url: "http://127.0.0.1:8081/webhook/main",
  content_type: "json",
  events: ["action_run_success", "action_run_failure"],
  active: true,
  secret: SECRET,
  ...over,
});

function hooks(f: FakeForgejo): FakeHook[] {
  return f.state.hooks;
}

describe("hook CRUD through the client", () => {
  it.each(ALL_SCOPES)("creates, lists, edits and deletes at %s scope with the documented body", async (name, scope) => {
    const f = await start();
    const { client } = clientFor(f);
    const created = await client.createHook(scope, spec({ active: false, events: ["push"] }));
    const post = f.callsTo("/hooks", "POST")[0]!;
    const config: Record<string, string> = { url: spec().url, content_type: "json", secret: SECRET };
    if (name === "instance") config.is_system_webhook = "true";
    expect(post.body).toEqual({ type: "forgejo", config, events: ["push"], active: false });
    expect(created).toEqual({ id: created.id, type: "forgejo", url: spec().url, content_type: "json", events: ["push"], active: false });
    expect(hooks(f)[0]!.isSystem).toBe(name === "instance");

    expect(await client.listHooks(scope)).toEqual([created]);
    const edited = await client.editHook(scope, created.id, spec({ events: ["push", "release"], active: true }));
    expect(edited).toMatchObject({ events: ["push", "release"], active: true });
    const patch = f.callsTo(`/hooks/${created.id}`, "PATCH")[0]!;
    expect(patch.body).toEqual({ config: { url: spec().url, content_type: "json" }, events: ["push", "release"], active: true });
    expect(JSON.stringify(patch.body)).not.toContain(SECRET);

    await client.deleteHook(scope, created.id);
    await client.deleteHook(scope, created.id);
    expect(await client.listHooks(scope)).toEqual([]);
  });

  it("uses type gitea on Gitea and reads the URL from config (Gitea has no top-level url)", async () => {
    const f = await start({ kind: "gitea" });
    const { client } = clientFor(f);
    const h = await client.createHook(REPO, spec({ events: ["workflow_job"] }));
    expect((f.callsTo("/hooks", "POST")[0]!.body as { type: string }).type).toBe("gitea");
    expect(h).toMatchObject({ type: "gitea", url: spec().url, content_type: "json", events: ["workflow_job"], active: true });
    expect((await client.listHooks(REPO))[0]!.url).toBe(spec().url);
  });

  it("pages hook lists", async () => {
    const f = await start();
    const { client } = clientFor(f);
    for (let i = 0; i < 53; i++) await client.createHook(ORG, spec({ url: `http://127.0.0.1:9/h/${i}` }));
    expect(await client.listHooks(ORG)).toHaveLength(53);
    expect(f.callsTo("/orgs/acme/hooks", "GET").map((c) => c.query)).toEqual([
      { page: "1", limit: "50" },
      { page: "2", limit: "50" },
    ]);
  });
});

describe("ensureWebhook", () => {
  it("creates a missing hook, active, with the secret and a fingerprint marker in the URL fragment", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    const r = await ensureWebhook(client, REPO, spec(), { logger: log.logger });
    expect(r.action).toBe("created");
    expect(r.secretFingerprint).toBe(secretFingerprint(SECRET));
    expect(r.secretFingerprint).toMatch(/^[0-9a-f]{16}$/);
    const h = hooks(f)[0]!;
    expect(h).toMatchObject({ active: true, secret: SECRET, events: ["action_run_success", "action_run_failure"], type: "forgejo" });
    expect(h.url).toBe(`http://127.0.0.1:8081/webhook/main#forgejo-nsc-secret=${r.secretFingerprint}`);
    expect(markerOf(h.url)).toBe(r.secretFingerprint);
    expect(log.text()).not.toContain(SECRET);
  });

  it("is unchanged on the next run: one GET, nothing written", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    await ensureWebhook(client, REPO, spec(), { logger: log.logger });
    f.clearCalls();
    const r = await ensureWebhook(client, REPO, spec({ events: ["action_run_failure", "action_run_success"] }), { logger: log.logger });
    expect(r.action).toBe("unchanged");
    expect(f.calls.map((c) => c.method)).toEqual(["GET"]);
  });

  it("PATCHes the full desired state when ordinary events or active change, keeping the secret", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    const first = await ensureWebhook(client, ORG, spec({ events: ["push", "action_run_success"] }), { logger: log.logger });
    const r = await ensureWebhook(client, ORG, spec({ events: ["release", "action_run_success"], active: false }), { logger: log.logger });
    expect(r.action).toBe("updated");
    expect(r.reason).toBe("changed: events, active");
    expect(r.hook.id).toBe(first.hook.id);
    const h = hooks(f)[0]!;
    expect(new Set(h.events)).toEqual(new Set(["release", "action_run_success"]));
    expect(h.active).toBe(false);
    expect(h.secret).toBe(SECRET);
    expect(f.callsTo("/hooks", "PATCH")[0]!.body).toMatchObject({ events: ["release", "action_run_success"], active: false });
  });

  it("recreates when action_run_* events change, because PATCH cannot change them", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    const first = await ensureWebhook(client, REPO, spec({ events: ["push"] }), { logger: log.logger });
    // Proof of the quirk: a PATCH adding them is silently ignored.
    await client.editHook(REPO, first.hook.id, spec({ url: first.hook.url, events: ["push", "action_run_success"] }));
    expect(hooks(f)[0]!.events).toEqual(["push"]);
    const r = await ensureWebhook(client, REPO, spec({ events: ["push", "action_run_success"] }), { logger: log.logger });
    expect(r.action).toBe("recreated");
    expect(r.reason).toContain("action_run");
    expect(hooks(f)).toHaveLength(1);
    expect(hooks(f)[0]!.id).not.toBe(first.hook.id);
    expect(hooks(f)[0]!.events).toEqual(["push", "action_run_success"]);
  });

  it("recreates when the secret changed (created first, then the old one deleted)", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    const first = await ensureWebhook(client, INSTANCE, spec(), { logger: log.logger });
    f.clearCalls();
    const r = await ensureWebhook(client, INSTANCE, spec({ secret: "rotated-secret-xyz" }), { logger: log.logger });
    expect(r.action).toBe("recreated");
    expect(r.reason).toContain("secret changed");
    expect(f.calls.map((c) => `${c.method} ${c.status}`)).toEqual(["GET 200", "POST 201", `DELETE 204`]);
    expect(hooks(f)).toHaveLength(1);
    expect(hooks(f)[0]).toMatchObject({ secret: "rotated-secret-xyz", isSystem: true });
    expect(hooks(f)[0]!.id).not.toBe(first.hook.id);
    expect(log.text()).not.toContain("rotated-secret-xyz");
    expect(log.text()).not.toContain(SECRET);
  });

  it("recreates a hand-made hook without a marker once, unless the caller knows its fingerprint", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    await client.createHook(REPO, spec());
    const known = await ensureWebhook(client, REPO, spec(), { logger: log.logger, previousSecretFingerprint: secretFingerprint(SECRET) });
    expect(known.action).toBe("updated");
    expect(known.reason).toBe("changed: url");
    await client.deleteHook(REPO, known.hook.id);

    await client.createHook(REPO, spec());
    const unknown = await ensureWebhook(client, REPO, spec(), { logger: log.logger });
    expect(unknown.action).toBe("recreated");
    expect(unknown.reason).toContain("unknown");
    expect((await ensureWebhook(client, REPO, spec(), { logger: log.logger })).action).toBe("unchanged");
  });

  it("with secretMarker none relies on the fingerprint the caller persisted", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    const opts = { logger: log.logger, secretMarker: "none" as const };
    const created = await ensureWebhook(client, REPO, spec(), opts);
    expect(hooks(f)[0]!.url).toBe(spec().url);
    expect((await ensureWebhook(client, REPO, spec(), { ...opts, previousSecretFingerprint: created.secretFingerprint })).action).toBe(
      "unchanged",
    );
    expect((await ensureWebhook(client, REPO, spec(), opts)).action).toBe("recreated");
    const rotated = await ensureWebhook(client, REPO, spec({ secret: "new-one" }), {
      ...opts,
      previousSecretFingerprint: created.secretFingerprint,
    });
    expect(rotated.action).toBe("recreated");
    expect(hooks(f)[0]!.secret).toBe("new-one");
  });

  it("finds the hook by delivery URL and deletes duplicates", async () => {
    const f = await start();
    const { client, log } = clientFor(f);
    const fp = secretFingerprint(SECRET);
    const keep = await client.createHook(ORG, spec({ url: markedUrl(spec().url, fp) }));
    await client.createHook(ORG, spec({ url: `${spec().url}#other` }));
    await client.createHook(ORG, spec({ url: "http://127.0.0.1:8081/webhook/else" }));
    const r = await ensureWebhook(client, ORG, spec(), { logger: log.logger });
    expect(r).toMatchObject({ action: "unchanged", removedDuplicates: 1 });
    expect(r.hook.id).toBe(keep.id);
    expect(hooks(f).map((h) => h.url)).toEqual([markedUrl(spec().url, fp), "http://127.0.0.1:8081/webhook/else"]);
  });

  it("works against Gitea (workflow_job) the same way", async () => {
    const f = await start({ kind: "gitea" });
    const { client, log } = clientFor(f);
    const desired = spec({ events: ["workflow_job"] });
    expect((await ensureWebhook(client, REPO, desired, { logger: log.logger })).action).toBe("created");
    expect((await ensureWebhook(client, REPO, desired, { logger: log.logger })).action).toBe("unchanged");
    expect((await ensureWebhook(client, REPO, { ...desired, events: ["workflow_job", "push"] }, { logger: log.logger })).action).toBe(
      "updated",
    );
  });
});

describe("end to end: an ensured hook delivers verifiable events to a receiver", () => {
  it("Forgejo: action_run_success reaches the URL without the fragment and verifies with the secret", async () => {
    const f = await start({ version: "15.0.3" });
    const rx = own(await startReceiver());
    const { client, log } = clientFor(f);
    await ensureWebhook(client, REPO, spec({ url: `${rx.url}/webhook/main` }), { logger: log.logger });
    const job = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    f.connectRunner({ registrationToken: f.registrationToken({ level: "instance" }), labels: ["linux"] });
    f.finishJob(job.id, "success");
    await waitFor(() => rx.received.length === 1, { what: "the delivery" });
    const got = rx.received[0]!;
    expect(got.url).toBe("/webhook/main");
    expect(got.headers["x-forgejo-event"]).toBe("action_run_success");
    expect(verifyWebhookSignature(got.body, got.headers, SECRET)).toEqual({ ok: true, header: "x-forgejo-signature" });
    expect(verifyWebhookSignature(got.body, got.headers, "wrong")).toEqual({ ok: false, reason: "mismatch" });
    expect(JSON.parse(got.body.toString("utf8"))).toMatchObject({
      action: "success",
      prior_status: "running",
      run: { id: job.runId, status: "success" },
    });
  });

  it("Gitea: workflow_job queued verifies through X-Gitea-Signature", async () => {
    const f = await start({ kind: "gitea" });
    const rx = own(await startReceiver());
    const { client, log } = clientFor(f);
    await ensureWebhook(client, ORG, spec({ url: `${rx.url}/webhook/gitea`, events: ["workflow_job"] }), { logger: log.logger });
    const job = f.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    await waitFor(() => rx.received.length === 1, { what: "the delivery" });
    const got = rx.received[0]!;
    expect(got.headers["x-forgejo-signature"]).toBeUndefined();
    expect(got.headers["x-gitea-hook-installation-target-type"]).toBe("organization");
    expect(verifyWebhookSignature(got.body, got.headers, SECRET)).toEqual({ ok: true, header: "x-gitea-signature" });
    expect(JSON.parse(got.body.toString("utf8"))).toMatchObject({
      action: "queued",
      workflow_job: { id: job.id, status: "queued", labels: ["ubuntu-latest"] },
    });
  });
});
