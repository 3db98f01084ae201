import type { InstanceConfig } from "../../src/config/autoscaler-schema.js";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import type { Platform } from "../../src/store/types.js";
import type { DispatcherModelConfig } from "./dispatcher.js";

export const LINUX_SMALL = "namespace-profile-linux-small";
export const LINUX_LARGE = "namespace-profile-linux-large";
export const MACOS = "namespace-profile-macos";

/** Everything about the installation that is not the traffic: the autoscaler's config and the dispatcher's. */
export interface Deployment {
  /** One autoscaler instance, parsed by the real config schema (defaults, durations, schedules). */
  autoscaler: InstanceConfig;
  dispatcher: DispatcherModelConfig;
  /** From the forge sending a webhook to the autoscaler receiving it. */
  deliveryLatencyMs: number;
  /** webhooks.debounce. */
  debounceMs: number;
}

/**
 * Parses an autoscaler config object with the daemon's own schema and returns its only instance.
 * Throws with every problem listed by key path, as `--check` would print them.
 */
export function autoscalerInstance(raw: unknown): InstanceConfig {
  const parsed = autoscalerConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ");
    throw new Error(`the simulated autoscaler config is invalid: ${problems}`);
  }
  const [instance] = parsed.data.instances;
  if (!instance || parsed.data.instances.length !== 1) throw new Error("the simulated autoscaler config must have exactly one instance");
  return instance;
}

export const platformOf = (labels: readonly string[]): Platform => (labels.some((l) => l.includes("macos")) ? "macos" : "linux");

/** Assumed boot times (not measured): Linux containers in tens of seconds, macOS VMs in minutes. */
export const BOOT: Record<Platform, DispatcherModelConfig["boot"][Platform]> = {
  linux: { kind: "lognormal", medianMs: 25_000, sigma: 0.35, minMs: 10_000, maxMs: 90_000 },
  macos: { kind: "lognormal", medianMs: 240_000, sigma: 0.3, minMs: 120_000, maxMs: 600_000 },
  windows: { kind: "lognormal", medianMs: 90_000, sigma: 0.3, minMs: 45_000, maxMs: 300_000 },
};

/**
 * The installation every trace runs against: three label sets, a weekday warm pool of two small
 * Linux runners from 08:00 to 18:00 UTC, and a dispatcher allowing 40 runners (4 of them macOS)
 * with 8 launches at a time. The caps live at the dispatcher, where every policy meets them alike;
 * the targets set no max_runners (the original had none to set).
 */
export function standardDeployment(pollInterval = "10s"): Deployment {
  const autoscaler = autoscalerInstance({
    dispatcher: { url: "http://dispatcher.sim.invalid" },
    instances: [
      {
        name: "sim",
        forgejo: { base_url: "http://forgejo.sim.invalid", token: "simulated", kind: "forgejo" },
        poll_interval: pollInterval,
        targets: [
          {
            name: "linux-small",
            labels: [LINUX_SMALL],
            min_idle: 0,
            min_idle_schedule: [{ cron: "0 8 * * 1-5", until: "0 18 * * 1-5", min_idle: 2 }],
            ttl: "30m",
          },
          { name: "linux-large", labels: [LINUX_LARGE], ttl: "45m" },
          { name: "macos", labels: [MACOS], ttl: "60m" },
        ],
      },
    ],
  });
  return {
    autoscaler,
    dispatcher: {
      maxRunners: 40,
      caps: [{ labels: [MACOS], max: 4 }],
      maxParallel: 8,
      superviseMs: 10_000,
      queueTimeoutMs: 3_600_000,
      defaultTtlMs: 1_800_000,
      boot: BOOT,
      platformOf,
    },
    deliveryLatencyMs: 500,
    debounceMs: 1000,
  };
}
