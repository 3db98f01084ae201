import type { RunnerCredentials } from "../runner/credentials.js";
import type { Platform } from "../store/types.js";

export type { RunnerCredentials } from "../runner/credentials.js";

export interface LaunchSpec {
  runnerName: string;
  platform: Platform;
  /** Labels as requested (names, possibly with an executor suffix). */
  labels: string[];
  image: string;
  machineType: string;
  ttlMs: number;
  env: Record<string, string>;
  credentials: RunnerCredentials;
  /** Job handle to pin the runner to (Forgejo >= 15). */
  jobHandle?: string | undefined;
  /** Labels to put on the instance (owner, runner name, platform, operator tags). */
  instanceLabels: Record<string, string>;
}

export interface InstanceInfo {
  instanceId: string;
  /** Our labels on the instance; forgejo-nsc.runner names the runner. */
  labels: Record<string, string>;
  createdAt?: string | undefined;
}

export interface LaunchResult {
  instanceId: string;
}

/**
 * A place runners run. One implementation per platform; all are supervised the same way.
 * Every method is idempotent and safe to retry.
 */
export interface Launcher {
  readonly platform: Platform;
  /**
   * Launchers with the same listSource see the same instances (Linux and Windows both use
   * `nsc list`): the supervisor lists once per source and tick. Defaults to the platform.
   */
  readonly listSource?: string;
  /** Starts an instance running the bootstrap. Throws LaunchError; cleans up what it left behind. */
  launch(spec: LaunchSpec, signal?: AbortSignal): Promise<LaunchResult>;
  /** Every live instance carrying all of these labels, in one call. Throws on a failed look. */
  list(labels: Record<string, string>): Promise<InstanceInfo[]>;
  /** Destroys an instance; an instance that is already gone counts as destroyed. */
  destroy(instanceId: string): Promise<void>;
}

/** Instance labels, shared by every platform. */
export const LABEL_OWNER = "forgejo-nsc.owner";
export const LABEL_RUNNER = "forgejo-nsc.runner";
export const LABEL_PLATFORM = "forgejo-nsc.platform";

/**
 * capacity: Namespace had no machine. transient: anything that may pass on another attempt (a
 * timeout, an instance that did not start). invalid: the request or configuration is wrong. auth:
 * the Namespace credentials were refused. Neither invalid nor auth left an instance behind.
 */
export type LaunchErrorKind = "capacity" | "transient" | "invalid" | "auth";

/** Every failed launch. `retryable` is what the dispatcher decides another attempt on. */
export class LaunchError extends Error {
  constructor(
    message: string,
    readonly kind: LaunchErrorKind,
    readonly instanceId?: string,
  ) {
    super(message);
    this.name = "LaunchError";
  }

  /** Capacity and transient failures are worth another attempt; invalid and auth ones are not. */
  get retryable(): boolean {
    return this.kind === "capacity" || this.kind === "transient";
  }
}
