import type { Logger } from "../http/logger.js";
import type { ComputeApiError } from "./compute-api.js";
import { LaunchError } from "./launcher.js";
import type { LaunchErrorKind } from "./launcher.js";
import { destroyOrWarn } from "./left-behind.js";
import type { NscError } from "./nsc-errors.js";

/**
 * What a failed Compute API call means for a launch, switched on the Connect code
 * (docs/upstream-contracts.md#compute-api-transport-and-errors): shared by every launcher that
 * creates instances through the API.
 */
export function computeLaunchErrorKind(err: ComputeApiError): LaunchErrorKind {
  switch (err.code) {
    case "unauthenticated":
    case "permission_denied":
    case "token":
      return "auth";
    case "invalid_argument":
    case "failed_precondition":
    case "out_of_range":
    case "unimplemented":
      return "invalid";
    case "resource_exhausted":
      return "capacity";
    default:
      return "transient";
  }
}

/**
 * What a failed `nsc run` or `nsc create` means for a launch. Capacity, auth and invalid keep their
 * kind; gone and transient are transient. A timeout depends on the command:
 * - `nsc create` (Windows, the macOS fallback) retries "ran out of capacity" forever, so only our
 *   outer timeout ends it: a create that ran out of time was, as a rule, waiting for a machine, so
 *   it is capacity (test/namespace/macos-launcher.test.ts, windows-launcher.test.ts).
 * - `nsc run` (Linux) fails on capacity at once, so its timeout is an instance that did not become
 *   ready (a slow image pull, a container that hangs): transient, and it may have left that
 *   instance behind (test/namespace/linux-launcher.test.ts).
 * Both kinds are retried; they differ in what the operator is told and in the leftover search.
 */
export function nscLaunchErrorKind(err: NscError): LaunchErrorKind {
  switch (err.kind) {
    case "capacity":
    case "auth":
    case "invalid":
      return err.kind;
    case "timeout":
      return err.command === "create" ? "capacity" : "transient";
    default:
      return "transient";
  }
}

/**
 * A failed `nsc create`: removes the instance it named (from its cidfile or error text) and returns
 * the launch error, `<what> failed: <nsc's message>`.
 */
export async function nscCreateFailure(
  err: NscError,
  what: string,
  destroy: (instanceId: string) => Promise<void>,
  log: Logger,
): Promise<LaunchError> {
  if (err.instanceId) await destroyOrWarn(destroy, err.instanceId, log, `instance ${err.instanceId} the failed create made`);
  return new LaunchError(`${what} failed: ${err.message}`, nscLaunchErrorKind(err), err.instanceId);
}
