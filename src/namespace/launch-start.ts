import type { Logger } from "../http/logger.js";
import { errorMessage } from "../shared/error-message.js";
import type { Platform } from "../store/types.js";
import { LaunchError } from "./launcher.js";
import type { LaunchSpec } from "./launcher.js";
import { credentialSecret } from "./runner-env.js";

const PLATFORM_NAMES: Record<Platform, string> = { linux: "Linux", windows: "Windows", macos: "macOS" };

export interface LaunchStart<T> {
  /** The launcher's logger naming the runner and platform. */
  log: Logger;
  /** The runner's token: to be redacted from anything nsc or the instance echoes. */
  secret: string;
  /** What `prepare` built: scripts, environment, request. */
  prepared: T;
}

/**
 * How every launch starts: a spec for another platform and anything `prepare` throws (bad labels,
 * environment names, cache tags, shapes) fail as `invalid` before an instance exists, since no
 * retry can fix them.
 */
export function startLaunch<T>(spec: LaunchSpec, platform: Platform, logger: Logger, prepare: () => T): LaunchStart<T> {
  const name = PLATFORM_NAMES[platform];
  const log = logger.child({ runner: spec.runnerName, platform });
  if (spec.platform !== platform) throw new LaunchError(`runner ${spec.runnerName} is for ${spec.platform}, not ${name}`, "invalid");
  const secret = credentialSecret(spec.credentials);
  try {
    return { log, secret, prepared: prepare() };
  } catch (err) {
    throw new LaunchError(`cannot launch ${name} runner ${spec.runnerName}: ${errorMessage(err)}`, "invalid");
  }
}
