import { describe, expect, it } from "vitest";
import { storedHookEvents } from "../../src/forgejo/hook-events.js";

/**
 * What the forge stores for requested hook events (docs/upstream-contracts.md, webhooks): Forgejo's
 * routers/api/v1/utils/hook.go sets flags, models/webhook/webhook.go EventCheckers lists them back;
 * Gitea's answer was read off the real Gitea 1.25.5 (test/upstream/gitea.test.ts checks it there).
 */
const sorted = (xs: string[]) => [...xs].sort();

describe("storedHookEvents", () => {
  it.each([
    ["forgejo", ["pull_request_review"], ["pull_request_review_approved", "pull_request_review_rejected"]],
    ["forgejo", ["pull_request_comment"], ["pull_request_comment", "pull_request_review_comment"]],
    ["forgejo", ["pull_request_only", "issues_only"], ["pull_request", "issues"]],
    ["forgejo", [], ["push"]],
    ["gitea", ["pull_request_review"], ["pull_request_review"]],
    ["gitea", ["pull_request_comment"], ["pull_request_comment"]],
    ["gitea", ["workflow_job"], ["workflow_job"]],
  ] as const)("%s stores %j as %j", (kind, requested, stored) => {
    expect(sorted(storedHookEvents(kind, requested))).toEqual(sorted([...stored]));
  });

  it("expands pull_request and issues into every sub-event", () => {
    expect(sorted(storedHookEvents("forgejo", ["push", "pull_request", "issues"]))).toEqual(
      sorted([
        "push",
        "issues",
        "issue_assign",
        "issue_label",
        "issue_milestone",
        "issue_comment",
        "pull_request",
        "pull_request_assign",
        "pull_request_label",
        "pull_request_milestone",
        "pull_request_comment",
        "pull_request_review_approved",
        "pull_request_review_rejected",
        "pull_request_review_comment",
        "pull_request_sync",
        "pull_request_review_request",
      ]),
    );
    expect(sorted(storedHookEvents("gitea", ["push", "pull_request", "issues"]))).toEqual(
      sorted([
        "push",
        "issues",
        "issue_assign",
        "issue_label",
        "issue_milestone",
        "issue_comment",
        "pull_request",
        "pull_request_assign",
        "pull_request_label",
        "pull_request_milestone",
        "pull_request_comment",
        "pull_request_review",
        "pull_request_sync",
        "pull_request_review_request",
      ]),
    );
  });
});
