import type { Logger } from "pino";
import type { AutoscalerConfig } from "../config/autoscaler-schema.js";
import type { Lease } from "./lease.js";
import { errorMessage } from "../shared/error-message.js";
import { postgresTarget, redactUrl } from "../store/postgres/postgres-config.js";
import { openLease } from "./open-lease.js";
import { leasePool } from "./pg-lease.js";
import { WebhookRelay } from "./webhook-relay.js";

export interface AutoscalerReplicas {
  lease: Lease;
  relay: WebhookRelay;
}

/**
 * With `replicas` configured: the autoscaler's lease (one replica reconciles at a time) and the
 * webhook relay (deliveries any replica receives reach the one that reconciles). Without: nothing,
 * and the autoscaler runs alone as before. The relay's connection is closed by stopping the relay.
 */
export async function openAutoscalerReplicas(config: AutoscalerConfig, logger: Logger): Promise<AutoscalerReplicas | undefined> {
  const r = config.replicas;
  if (!r) return undefined;
  // The dispatcher's reading of the URL (sslmode as libpq does it, a host left out, the password never shown).
  const target = postgresTarget(r.store, { schema: r.schema, keys: { url: "replicas.store", options: "replicas" } });
  const connection = { ...target.pool, application_name: "forgejo-nsc autoscaler" };
  const unreachable = (err: unknown) =>
    new Error(
      `cannot open the replicas' database ${target.display} (replicas.store): ${redactUrl(errorMessage(err))}; start the server or check replicas.store's host, port and credentials`,
      { cause: err },
    );
  const lease = await openLease({
    postgres: { connection, schema: r.schema },
    name: "autoscaler",
    ttlMs: r.lease_ttl,
    logger,
    replica: r.name,
  }).catch((err: unknown) => {
    throw unreachable(err);
  });
  const pool = leasePool(connection, Math.max(1000, r.lease_ttl), logger);
  const relay = new WebhookRelay({ pool, schema: r.schema, logger: logger.child({ component: "webhook-relay" }), close: () => pool.end() });
  try {
    await relay.ensureSchema();
  } catch (err) {
    await relay.stop();
    await lease.stop();
    throw unreachable(err);
  }
  return { lease, relay };
}
