import { afterEach, describe, expect, it } from "vitest";
import { markerOf, secretFingerprint } from "../../src/forgejo/hooks.js";
import { startFakeForgejo } from "../fakes/forgejo/index.js";
import { waitFor } from "../helpers/wait.js";
import { WEBHOOK_SECRET, dispatchesPerJob, freePort, instanceConfig, startStack } from "./harness.js";
import type { Stack } from "./harness.js";

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

describe("webhook setup at start", () => {
  it("Gitea: creates the workflow_job hook, whose deliveries then drive dispatches", async () => {
    const port = await freePort();
    const hookUrl = `http://127.0.0.1:${port}/webhook/gt`;
    stack = await startStack({
      port,
      forgejo: { kind: "gitea", version: "1.25.0", repos: [{ owner: "acme", name: "app" }] },
      instances: (url) => [
        instanceConfig(url, {
          name: "gt",
          scope: { level: "repository", owner: "acme", name: "app" },
          poll_interval: "1h",
          webhook_secret: WEBHOOK_SECRET,
          webhook: { url: hookUrl },
          targets: [{ labels: ["ubuntu-latest"] }],
        }),
      ],
    });
    const { forgejo, dispatcher } = stack;
    const hook = await waitFor(() => forgejo.state.hooks[0], { what: "hook created" });
    expect(hook).toMatchObject({ type: "gitea", events: ["workflow_job"], contentType: "json", secret: WEBHOOK_SECRET, active: true });
    expect(markerOf(hook.url)).toBe(secretFingerprint(WEBHOOK_SECRET));
    await waitFor(async () => (await stack!.status()).instances[0]!.webhook.setup === "ok", { what: "setup ok" });

    const job = forgejo.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    await waitFor(() => dispatcher.dispatches.length === 1, { what: "dispatch from the delivery", timeoutMs: 3000 });
    await forgejo.settled();
    expect(dispatchesPerJob(dispatcher)).toEqual(new Map([[job.id, 1]]));
    const s = (await stack.status()).instances[0]!;
    expect(s.webhook).toMatchObject({ configured: true, setup: "ok", last_delivery_event: "workflow_job.queued", workflow_job_seen: true });
    expect(s.mode).toBe("resync");
  });

  it("Forgejo: default events are the hints it can send; an existing hook is updated, not duplicated", async () => {
    const forgejo = await startFakeForgejo({ version: "15.0.3", orgs: [{ name: "acme", owners: ["admin"] }] });
    stack = await startStack({
      forgejoServer: forgejo,
      instance: {
        scope: { level: "organization", owner: "acme" },
        webhook_secret: WEBHOOK_SECRET,
        webhook: { url: "http://127.0.0.1:9/webhook/fj" },
      },
    });
    const hook = await waitFor(() => stack!.forgejo.state.hooks[0], { what: "hook" });
    // Forgejo stores "pull_request" as its sub-events (routers/api/v1/utils/hook.go pullHook).
    const PULL = ["pull_request", "pull_request_assign", "pull_request_label", "pull_request_milestone", "pull_request_comment"];
    const REVIEW = [
      "pull_request_review_approved",
      "pull_request_review_rejected",
      "pull_request_review_comment",
      "pull_request_sync",
      "pull_request_review_request",
    ];
    expect(hook.events.sort()).toEqual(
      ["action_run_failure", "action_run_recover", "action_run_success", "push", ...PULL, ...REVIEW].sort(),
    );
    expect(hook.type).toBe("forgejo");
    await stack.close();
    // A restart with the same configuration leaves the hook alone: no PATCH on every start.
    stack = await startStack({
      forgejoServer: forgejo,
      instance: {
        scope: { level: "organization", owner: "acme" },
        webhook_secret: WEBHOOK_SECRET,
        webhook: { url: "http://127.0.0.1:9/webhook/fj" },
      },
    });
    await waitFor(async () => (await stack!.status()).instances[0]!.webhook.setup === "ok", { what: "setup ok after restart" });
    expect((await stack.status()).instances[0]!.webhook.message).toMatch(/^unchanged/);
    expect(forgejo.callsTo(`/orgs/acme/hooks/${hook.id}`, "PATCH")).toEqual([]);
    await stack.close();
    // Restart with fewer events: the same hook is PATCHed.
    stack = await startStack({
      forgejoServer: forgejo,
      instance: {
        scope: { level: "organization", owner: "acme" },
        webhook_secret: WEBHOOK_SECRET,
        webhook: {
          url: "http://127.0.0.1:9/webhook/fj",
          events: ["push", "action_run_success", "action_run_failure", "action_run_recover"],
        },
      },
    });
    await waitFor(async () => (await stack!.status()).instances[0]!.webhook.setup === "ok", { what: "setup ok" });
    expect(forgejo.state.hooks).toHaveLength(1);
    expect(forgejo.state.hooks[0]!.id).toBe(hook.id);
    expect(forgejo.state.hooks[0]!.events.sort()).toEqual(["action_run_failure", "action_run_recover", "action_run_success", "push"]);
    await stack.close();
    stack = undefined;
    await forgejo.close();
  });

  it("warns that Forgejo cannot send workflow_job, and keeps retrying while Forgejo refuses", async () => {
    stack = await startStack({
      forgejo: { version: "15.0.3" },
      start: false,
      instance: { webhook_secret: WEBHOOK_SECRET, webhook: { url: "http://127.0.0.1:9/webhook/fj", events: ["workflow_job", "push"] } },
    });
    stack.forgejo.failNext("/admin/hooks", 500, 3, { method: "GET" });
    stack.autoscaler.start();
    await waitFor(async () => (await stack!.status()).instances[0]!.webhook.setup === "error", { what: "setup error reported" });
    const s = await waitFor(async () => {
      const x = (await stack!.status()).instances[0]!;
      return x.webhook.setup === "ok" ? x : undefined;
    });
    expect(s.webhook.message).toMatch(/^created/);
    expect(stack.forgejo.callsTo("/admin/hooks", "GET").length).toBe(4);
    expect(stack.logs.text()).toContain("webhook.events lists workflow_job, which Forgejo never sends");
    expect(stack.logs.text()).toContain("could not set up the webhook; retrying in the background");
  });
});
