import type { ForgejoApi } from "../forgejo/types.js";
import type { Launcher } from "../namespace/launcher.js";
import type { Platform } from "../store/types.js";

/**
 * Refused because this replica does not hold the lease (a standby, or a leader whose lease ran out):
 * by the lease gates here, or by a fenced store write (Store.fenced), which then wrote nothing.
 * kind "invalid": nothing was created. A refused launch never reaches the leftover check: the
 * launch path tests isNotLeader first and leaves the runner to the replica that holds the lease.
 */
export class NotLeaderError extends Error {
  readonly kind = "invalid";
  readonly notLeader = true;
  constructor(what: string, options?: { cause?: unknown }) {
    super(
      `${what} refused: this replica does not hold the lease (a standby, or its lease ran out); the replica that holds it does this on its next tick`,
      options,
    );
    this.name = "NotLeaderError";
  }
}

export function isNotLeader(err: unknown): boolean {
  return err instanceof NotLeaderError;
}

/**
 * A launcher whose effects (launch, destroy) happen only while `acting()` says so, checked right
 * before each call: the last line between a replica that lost its lease and Namespace. Listing is
 * always allowed (standbys answer status from records, not from Namespace, but tests and recovery may look).
 */
export function gateLauncher(launcher: Launcher, acting: () => boolean): Launcher {
  return new Proxy(launcher, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if ((prop === "launch" || prop === "destroy") && typeof value === "function") {
        return (...args: unknown[]) => {
          if (!acting()) return Promise.reject(new NotLeaderError(`nsc ${prop}`));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export function gateLaunchers(launchers: Partial<Record<Platform, Launcher>>, acting: () => boolean): Partial<Record<Platform, Launcher>> {
  const out: Partial<Record<Platform, Launcher>> = {};
  for (const [p, l] of Object.entries(launchers) as [Platform, Launcher][]) out[p] = gateLauncher(l, acting);
  return out;
}

/** Forgejo calls that change something there, gated like the launcher's. */
const FORGEJO_EFFECTS = new Set<keyof ForgejoApi>(["registerRunner", "deleteRunner", "registrationToken"]);

export function gateForgejo(api: ForgejoApi, acting: () => boolean): ForgejoApi {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function") return value;
      if (FORGEJO_EFFECTS.has(prop as keyof ForgejoApi)) {
        return (...args: unknown[]) => {
          if (!acting()) return Promise.reject(new NotLeaderError(`Forgejo ${String(prop)}`));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}
