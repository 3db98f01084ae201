import { TOKEN_ENV } from "../runner/bootstrap-sh.js";
import { resolveLabels } from "../runner/labels.js";
import type { RunnerCredentials } from "../runner/credentials.js";
import type { LaunchSpec } from "./launcher.js";

/** The secret of a credential set, passed to the instance as FORGEJO_RUNNER_TOKEN only. */
export function credentialSecret(c: RunnerCredentials): string {
  return c.mode === "token" ? c.registrationToken : c.token;
}

/**
 * The environment every platform's bootstrap reads: the operator's `namespace.environment`, the
 * request's `env`, then ours last so a request cannot replace the runner's identity or token.
 */
export function runnerEnvironment(
  spec: LaunchSpec,
  opts: { base: Record<string, string>; executor: string; cachePath?: string | undefined },
): Record<string, string> {
  const env: Record<string, string> = { ...opts.base, ...spec.env };
  env.FORGEJO_INSTANCE_URL = spec.credentials.instanceUrl;
  env.FORGEJO_RUNNER_NAME = spec.runnerName;
  env.FORGEJO_RUNNER_LABELS = resolveLabels(spec.labels, opts.executor).join(",");
  env[TOKEN_ENV] = credentialSecret(spec.credentials);
  if (spec.credentials.mode === "ephemeral") env.FORGEJO_RUNNER_UUID = spec.credentials.uuid;
  else delete env.FORGEJO_RUNNER_UUID;
  if (opts.cachePath) env.NSC_CACHE_PATH = opts.cachePath;
  return env;
}
