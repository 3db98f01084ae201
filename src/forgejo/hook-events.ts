import type { ServerInfo } from "./types.js";

/**
 * What a forge stores (and lists back) for the events a hook was created or edited with. Both keep
 * per-event flags and list the flags that are set, so "pull_request" and "issues" come back
 * expanded into their sub-events and "*_only" as the plain name:
 *
 * - Forgejo (routers/api/v1/utils/hook.go `pullHook`/`issuesHook`, models/webhook/webhook.go
 *   `EventCheckers`/`EventsArray`, v14–v16): the review flag is listed as approved and rejected, the
 *   comment flag as pull_request_comment and pull_request_review_comment.
 * - Gitea (seen on the real Gitea 1.25.5 in this project's upstream suite): the review flag is
 *   listed as `pull_request_review`.
 *
 * Comparing the configured list with the stored one as-is would report a difference on every start
 * and PATCH the hook each time.
 */
const ISSUE_SUBEVENTS = ["issue_assign", "issue_label", "issue_milestone", "issue_comment"];
const PULL_SUBEVENTS = [
  "pull_request_assign",
  "pull_request_label",
  "pull_request_milestone",
  "pull_request_review_request",
  "pull_request_sync",
];

export function storedHookEvents(kind: ServerInfo["kind"], events: readonly string[]): string[] {
  // Forgejo's EventCheckers list review_comment under the *comment* flag (HasPullRequestCommentEvent)
  // and approved/rejected under the review flag.
  const review = kind === "forgejo" ? ["pull_request_review_approved", "pull_request_review_rejected"] : ["pull_request_review"];
  const comment = kind === "forgejo" ? ["pull_request_comment", "pull_request_review_comment"] : ["pull_request_comment"];
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
        [...PULL_SUBEVENTS, ...comment, ...review].forEach((x) => out.add(x));
        break;
      case "pull_request_comment":
        comment.forEach((x) => out.add(x));
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
