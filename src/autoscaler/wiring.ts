import type { Logger } from "pino";
import type { AutoscalerConfig, InstanceConfig } from "../config/autoscaler-schema.js";
import { dispatcherFor } from "../config/autoscaler-schema.js";
import { ForgejoClient } from "../forgejo/client.js";
import { Metrics } from "../http/metrics.js";
import type { AutoscalerDeps, InstanceClients } from "./app.js";
import { DispatcherClient } from "./dispatcher-client.js";

export interface AutoscalerWiringOptions {
  /** The registry every client counts its calls in (tests: one without process metrics). */
  metrics?: Metrics;
}

/** The Forgejo client of an instance, as configured. */
function forgejoClientFor(inst: InstanceConfig, logger: Logger, metrics: Metrics): ForgejoClient {
  return new ForgejoClient({
    baseUrl: inst.forgejo.base_url,
    token: inst.forgejo.token ?? "",
    timeoutMs: inst.forgejo.timeout,
    extraHeaders: inst.forgejo.extra_headers,
    logger: logger.child({ instance: inst.name }),
    metrics,
    kind: inst.forgejo.kind === "auto" ? undefined : inst.forgejo.kind,
  });
}

/** Builds the real clients of every instance (Forgejo and its dispatcher) from a validated config. */
export function buildAutoscalerDeps(config: AutoscalerConfig, logger: Logger, opts: AutoscalerWiringOptions = {}): AutoscalerDeps {
  const metrics = opts.metrics ?? new Metrics({ daemon: "autoscaler" });
  const clients = new Map<string, InstanceClients>();
  for (const inst of config.instances) {
    const endpoint = dispatcherFor(config, inst);
    clients.set(inst.name, {
      api: forgejoClientFor(inst, logger, metrics),
      dispatcher: new DispatcherClient({ url: endpoint.url, timeoutMs: endpoint.timeoutMs, token: endpoint.token, metrics }),
    });
  }
  return { config, logger, metrics, clients };
}
