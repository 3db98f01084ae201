import { ForgejoClient } from "../../src/forgejo/client.js";
import type { ForgejoClientOptions } from "../../src/forgejo/client.js";
import type { Scope } from "../../src/forgejo/scope.js";
import { Metrics } from "../../src/http/metrics.js";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import { captureLogger } from "../helpers/log-capture.js";

export const INSTANCE: Scope = { level: "instance" };
export const ORG: Scope = { level: "organization", owner: "acme" };
export const REPO: Scope = { level: "repository", owner: "acme", name: "app" };
export const USER: Scope = { level: "user" };
export const ALL_SCOPES: [string, Scope][] = [
  ["instance", INSTANCE],
  ["organization", ORG],
  ["repository", REPO],
  ["user", USER],
];

/** A real client against the fake, with a captured logger and its own metrics registry. */
export function clientFor(fake: FakeForgejo, overrides: Partial<ForgejoClientOptions> = {}) {
  const log = captureLogger("debug");
  const metrics = new Metrics({ defaultMetrics: false });
  const client = new ForgejoClient({
    baseUrl: fake.url,
    token: FAKE_ADMIN_TOKEN,
    timeoutMs: 5000,
    logger: log.logger,
    metrics,
    ...overrides,
  });
  return { client, log, metrics };
}

/** Waits for a rejected promise and returns the error, failing the test if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`rejected with a non-Error: ${String(err)}`);
  }
  throw new Error("expected the call to fail, but it succeeded");
}
