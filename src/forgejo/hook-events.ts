import type { ServerInfo } from "./types.js";

/**
 * What a forge stores (and lists back) for the events a hook was created or edited with. Both keep
 * per-event flags and list the flags that are set, so "pull_request" and "issues" come back
 * expanded into their sub-events and "*_only" as the plain name:
 *
 * - Forgejo (routers/api/v1/utils/hook.go `pullHook`/`issuesHook`, models/webhook/webhook.go
 *   `EventsArray`, v16): the review flag is listed as approved, rejected and review_comment.
 * - Gitea (seen on the real Gitea 1.25.5 in this project's upstream suite): the review flag is
 *   listed as `pull_request_review`.
 *
 * Comparing the configured list with the stored one as-is would report a difference on every start
 * and PATCH the hook each time.
 */
const ISSUE_SUBEVENTS = ["issue_assign", "issue_label", "issue_milestone", "issue_comment"];
const PULL_SUBEVENTS = ["pull_request_assign", "pull_request_label", "pull_request_milestone", "pull_request_comment", "pull_request_review_request", "pull_request_sync"];
const FORGEJO_REVIEW = ["pull_request_review_approved", "pull_request_review_rejected", "pull_request_review_comment"];

export function storedHookEvents(kind: ServerInfo["kind"], events: readonly string[]): string[] {
  const review = kind === "forgejo" ? FORGEJO_REVIEW : ["pull_request_review"];
  const out = new Set<string>();
  for (const e of events.length ? events : ["push"]) {
    switch (e) {
      case "issues":
        out.add("issues");
        ISSUE_SUBEVENTS.forEach((x) => out.add(x));
        break;
      case "issues_only":
        out.add("issues");
        break;
      case "pull_request":
        out.add("pull_request");
        [...PULL_SUBEVENTS, ...review].forEach((x) => out.add(x));
        break;
      case "pull_request_only":
        out.add("pull_request");
        break;
      case "pull_request_review":
        review.forEach((x) => out.add(x));
        break;
      default:
        out.add(e);
    }
  }
  return [...out];
}
