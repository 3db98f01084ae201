import { isLoopbackHost, splitListen } from "../config/common.js";
import type { DaemonName } from "./daemon.js";

/** What anyone who can reach an API without a token could do with it. */
const EXPOSED: Record<DaemonName, string> = {
  dispatcher: "start paid instances",
  autoscaler: "read the status API (Forgejo URLs, jobs, errors)",
};

/**
 * The listen-safety rule of both daemons: an API without tokens listens on loopback only, unless
 * the operator said the network is trusted (auth.allow_unauthenticated). Returns the problem, in
 * words that say what to do, or undefined when the listen address is fine.
 */
export function unsafeListenProblem(
  daemon: DaemonName,
  listen: string,
  auth: { tokens: readonly string[]; allow_unauthenticated: boolean },
): string | undefined {
  if (auth.tokens.length > 0 || auth.allow_unauthenticated || isLoopbackHost(splitListen(listen).host)) return undefined;
  return (
    `listen ${listen} is not a loopback address: refusing to listen on ${listen} without API tokens: anyone who can reach it could ${EXPOSED[daemon]}. ` +
    "Set auth.tokens (or auth.tokens_file), listen on 127.0.0.1, or set auth.allow_unauthenticated: true on a trusted network."
  );
}
