/** Credentials a runner uses to reach Forgejo. Secret fields never leave the launch path. */
export type RunnerCredentials =
  | { mode: "token"; instanceUrl: string; registrationToken: string }
  | { mode: "ephemeral"; instanceUrl: string; uuid: string; token: string };
