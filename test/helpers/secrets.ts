import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * The test suite's secrets, in one place, for the whole-suite secret scan (test/global-setup.ts):
 * every log line the suite produces is collected in a scan directory, and the run fails if any of
 * these values appears in it.
 */

/** Set by test/global-setup.ts before the workers start: where log lines are collected. */
export const SCAN_DIR_ENV = "FORGEJO_NSC_TEST_LOG_DIR";

/** Bearer token for the dispatcher API in tests that start their own daemons (the Caddy end-to-end test). */
export const TEST_API_TOKEN = "e2e-dispatcher-api-token-7c41d09b2e";
/** A second, rotated-in dispatcher token (several tokens are accepted at once). */
export const TEST_API_TOKEN_NEXT = "e2e-dispatcher-api-token-next-5a88f3";
/** Bearer token for the autoscaler's status API. */
export const TEST_STATUS_TOKEN = "e2e-autoscaler-status-token-91c2e6aa";
/** Webhook secret shared by the fake Forgejo's hook and the autoscaler instance. */
export const TEST_WEBHOOK_SECRET = "e2e-webhook-secret-3f9d1b7c55e0";

/**
 * Fixed secrets used across the suite, each with where it comes from. Values exported by other test
 * modules are checked against those modules by test/e2e/secret-scan.test.ts, so a renamed or
 * changed constant cannot silently drop out of the scan.
 */
export const KNOWN_TEST_SECRETS: readonly { value: string; source: string }[] = [
  { value: TEST_API_TOKEN, source: "test/helpers/secrets.ts TEST_API_TOKEN" },
  { value: TEST_API_TOKEN_NEXT, source: "test/helpers/secrets.ts TEST_API_TOKEN_NEXT" },
  { value: TEST_STATUS_TOKEN, source: "test/helpers/secrets.ts TEST_STATUS_TOKEN" },
  { value: TEST_WEBHOOK_SECRET, source: "test/helpers/secrets.ts TEST_WEBHOOK_SECRET" },
  // Fake Forgejo: the admin PAT and the admin's password (basic auth, PAT minting).
  { value: "fakeadminpat0123456789abcdef0123456789abcd", source: "test/fakes/forgejo/index.ts FAKE_ADMIN_TOKEN" },
  { value: "admin-password", source: "test/fakes/forgejo/index.ts FAKE_ADMIN_PASSWORD" },
  // Real-upstream suites (test/upstream): the daemons' shared secrets and the real Gitea's admin password.
  { value: "upstream-e2e-dispatcher-token-4d1e9a", source: "test/upstream/daemons.ts UPSTREAM_API_TOKEN" },
  { value: "upstream-e2e-webhook-secret-83b0c2", source: "test/upstream/daemons.ts UPSTREAM_WEBHOOK_SECRET" },
  { value: "upstream-e2e-admin-Passw0rd-7f2c", source: "test/upstream/gitea-server.ts GITEA_ADMIN_PASSWORD" },
  // Dispatcher tests.
  { value: "test-dispatcher-api-token-0123456789", source: "test/dispatcher/harness.ts API_TOKEN" },
  { value: "crash-test-api-token-5b0c1d2e3f405162", source: "test/dispatcher/process-harness.ts PROCESS_API_TOKEN" },
  { value: "env-secret-value-7f3a9c1e5b2d4680", source: "test/dispatcher/crash-secrets.test.ts ENV_SECRET" },
  { value: "wrong-bearer-token-0a1b2c3d4e5f6789", source: "test/dispatcher/crash-secrets.test.ts WRONG_TOKEN" },
  // Autoscaler tests.
  { value: "dispatcher-token-0123456789abcdef", source: "test/autoscaler/harness.ts DISPATCHER_TOKEN" },
  { value: "status-token-0123456789abcdef", source: "test/autoscaler/harness.ts STATUS_TOKEN" },
  { value: "webhook-secret-0123456789abcdef", source: "test/autoscaler/harness.ts WEBHOOK_SECRET, test/forgejo/hooks.test.ts SECRET" },
  { value: "client-test-token-0123456789abcdef", source: "test/autoscaler/dispatcher-client.test.ts TOKEN" },
  { value: "not-the-right-token-0123456789", source: "test/autoscaler/dispatcher-client.test.ts (a wrong token is still a credential)" },
  { value: "forgejo-nsc-dispatcher-token-value-0123456789", source: "test/autoscaler/config.test.ts" },
  { value: "gitea-dispatcher-token-value-0123456789", source: "test/autoscaler/config.test.ts" },
  // Forgejo client and webhooks.
  { value: "rotated-secret-xyz", source: "test/forgejo/hooks.test.ts" },
  { value: "s3cret-webhook-key", source: "test/forgejo/webhook-signature.test.ts" },
  // Launchers and nsc: registration tokens, runner tokens, Windows passwords, Namespace bearers.
  { value: "RegToken-0123456789abcdefABCDEF0123456789", source: "test/namespace/linux-launcher.test.ts REG_TOKEN" },
  { value: "linux-api-runner-T0ken-5e8a91c4", source: "test/namespace/linux-launcher-compute.test.ts RUNNER_TOKEN" },
  { value: "linux-api-reg-T0ken-0b7d22f1", source: "test/namespace/linux-launcher-compute.test.ts REG_TOKEN" },
  { value: "cancel-test-token-0123456789abcdef", source: "test/autoscaler/act-cancel.test.ts TOKEN" },
  { value: "ephemeral-runner-token-fedcba9876543210", source: "test/namespace/linux-launcher.test.ts RUNNER_TOKEN" },
  { value: "reg-T0ken-for-macos-4b2c", source: "test/namespace/macos-launcher.test.ts REG_TOKEN" },
  { value: "runner-T0ken-for-macos-9d1e", source: "test/namespace/macos-launcher.test.ts RUNNER_TOKEN" },
  { value: "reg-T0ken-for-windows-11aa", source: "test/namespace/windows-launcher.test.ts REG_TOKEN" },
  { value: "runner-T0ken-for-windows-22bb", source: "test/namespace/windows-launcher.test.ts RUNNER_TOKEN" },
  { value: "Win-Pa55word-33cc!", source: "test/namespace/windows-launcher.test.ts WIN_PASSWORD" },
  { value: "Wrong-Pa55-44dd", source: "test/namespace/windows-launcher.test.ts" },
  { value: "regtok-Sup3rS3cret-0123456789", source: "test/namespace/nsc-cli.test.ts" },
  { value: "eph-runner-token-abcdef0123456789", source: "test/namespace/nsc-cli.test.ts" },
  { value: "nsrt_testtoken", source: "test/namespace/nsc-cli.test.ts" },
  { value: "nsrt_test", source: "test/namespace/linux-launcher.test.ts" },
  { value: "nsrt_fake_windows", source: "test/namespace/windows-launcher.test.ts" },
  { value: "nsrt_wrong", source: "test/namespace/macos-launcher.test.ts" },
  { value: "nsrt_old_revoked", source: "test/namespace/compute-api.test.ts" },
  { value: "sess_secret", source: "test/namespace/compute-api.test.ts" },
  // Bootstrap scripts.
  { value: "s3cr3t-Runner-T0ken-9f8e7d", source: "test/runner/bootstrap-sh.test.ts SECRET" },
  { value: "macOS-s3cr3t-T0ken-77aa", source: "test/runner/bootstrap-bash.test.ts SECRET" },
  // CLI.
  { value: "status-test-token-5f3a9c1e7d2b4a68", source: "test/cli/status.test.ts TOKEN" },
  { value: "bin-test-token-0123456789abcdef", source: "test/cli/bin.test.ts" },
  { value: "alice-correct-horse-battery", source: "test/cli/provision.test.ts ALICE_PASSWORD" },
  { value: "bob-password-123456", source: "test/cli/provision.test.ts BOB_PASSWORD" },
  { value: "nsct_raw_token_value_0123456789", source: "test/cli/provision.test.ts" },
  // Store.
  { value: "ghp_SUPERSECRETVALUE1234567890", source: "test/store/sqlite-store.test.ts" },
  // Replica chaos test (test/chaos): the dispatchers' API token.
  { value: "chaos-dispatcher-api-token-6e21b97d", source: "test/chaos/replicas.chaos.ts TOKEN" },
];

/** The scan directory of this run, when the suite runs under test/global-setup.ts. */
export function scanDir(): string | undefined {
  const dir = process.env[SCAN_DIR_ENV];
  return dir ? dir : undefined;
}

export const LOGS_SUBDIR = "logs";
export const LEDGER_SUBDIR = "secrets";

/**
 * Adds secrets only known at run time (runner tokens, registration tokens, generated webhook
 * secrets) to the scan's ledger, so the teardown looks for these exact values too. A no-op outside
 * the global setup (a single file run with another config).
 */
export function recordSecrets(values: Iterable<string | undefined | null>): void {
  const dir = scanDir();
  if (!dir) return;
  const list = [...values].filter((v): v is string => typeof v === "string" && v.length > 0);
  if (list.length === 0) return;
  if (list.some((v) => /[\r\n]/.test(v)))
    throw new Error("recordSecrets: a secret with a line break cannot be recorded (the ledger is one secret per line)");
  const ledger = join(dir, LEDGER_SUBDIR);
  mkdirSync(ledger, { recursive: true });
  appendFileSync(join(ledger, `ledger-${process.pid}.txt`), `${list.join("\n")}\n`, { mode: 0o600 });
}
