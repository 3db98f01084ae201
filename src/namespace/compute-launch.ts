import type { Logger } from "../http/logger.js";
import { errorMessage } from "../shared/error-message.js";
import { ComputeApiError } from "./compute-api.js";
import type { ComputeApi } from "./compute-api.js";
import type { DescribeInstanceResponse } from "./compute-types.js";
import { computeLaunchErrorKind } from "./launch-errors.js";
import { LaunchError } from "./launcher.js";
import { destroyOrWarn } from "./left-behind.js";

const READY = "RUNNING";
const ENDED = new Set(["DESTROYED", "DESTROYING", "ERROR"]);

/** Where to look when an instance ended early: the Compute API gives no shutdown reason. */
function whereToLook(d: DescribeInstanceResponse): string {
  return `the Compute API reports no reason; see the instance in the Namespace dashboard${d.instanceUrl ? ` (${d.instanceUrl})` : ""}`;
}

export interface StartOptions {
  api: Pick<ComputeApi, "describeInstance">;
  /** How messages name the instance: "macOS instance", "Linux instance". */
  noun: string;
  runnerName: string;
  waitTimeoutMs: number;
  pollIntervalMs: number;
  /** Follows "was still CREATING after namespace.wait_timeout; ": what to do about it. */
  timeoutAdvice: string;
  /** Removes an instance that did not start (the launcher's own destroy). */
  destroy: (instanceId: string) => Promise<void>;
  log: Logger;
  signal?: AbortSignal | undefined;
}

/**
 * Waits until a just-created instance runs (DescribeInstance until RUNNING). An instance that ends,
 * errors, disappears or is still not running after the wait timeout is destroyed (best effort: the
 * orphan sweep retries) and the launch fails with a LaunchError naming it.
 */
export async function awaitRunning(instanceId: string, created: DescribeInstanceResponse, o: StartOptions): Promise<void> {
  try {
    await pollUntilRunning(instanceId, created, o);
  } catch (err) {
    await destroyOrWarn(o.destroy, instanceId, o.log, `a ${o.noun} that failed to start`);
    if (err instanceof LaunchError) throw err;
    const kind = err instanceof ComputeApiError ? computeLaunchErrorKind(err) : "transient";
    throw new LaunchError(`${o.noun} ${instanceId} for runner ${o.runnerName} did not start: ${errorMessage(err)}`, kind, instanceId);
  }
}

async function pollUntilRunning(instanceId: string, first: DescribeInstanceResponse, o: StartOptions): Promise<void> {
  const deadline = Date.now() + o.waitTimeoutMs;
  let d = first;
  for (;;) {
    const status = d.metadata.status;
    if (status === READY) return;
    if (ENDED.has(status) || d.metadata.destroyedAt) {
      throw new LaunchError(`${o.noun} ${instanceId} ended (${status}) before it ran: ${whereToLook(d)}`, "transient", instanceId);
    }
    if (Date.now() >= deadline) {
      throw new LaunchError(
        `${o.noun} ${instanceId} was still ${status} after namespace.wait_timeout; ${o.timeoutAdvice}`,
        "transient",
        instanceId,
      );
    }
    if (o.signal?.aborted) throw new LaunchError(`launch of ${o.noun} ${instanceId} was cancelled`, "transient", instanceId);
    await new Promise((r) => setTimeout(r, o.pollIntervalMs));
    try {
      d = await o.api.describeInstance(instanceId, o.signal);
    } catch (err) {
      if (err instanceof ComputeApiError && err.code === "not_found") {
        throw new LaunchError(`${o.noun} ${instanceId} disappeared before it ran`, "transient", instanceId);
      }
      if (err instanceof ComputeApiError && computeLaunchErrorKind(err) !== "transient") throw err;
      // A transient describe failure is not the instance's failure: look again.
    }
  }
}
