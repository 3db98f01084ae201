import type pg from "pg";
import type { Logger } from "pino";
import type { WorkflowJobEvent } from "../autoscaler/reconciler.js";
import { errorMessage } from "../shared/error-message.js";

/** What a webhook delivery tells a reconciler: a Gitea workflow_job event, or "something changed" (the event name). */
export type RelayedDelivery = { kind: "workflow_job"; job: WorkflowJobEvent } | { kind: "delivery"; event: string };

/** Where the leader hands relayed deliveries: the reconciler of the named instance. */
export interface DeliverySink {
  onWorkflowJob(e: WorkflowJobEvent): void;
  onDelivery(event: string): void;
}

export interface WebhookRelayOptions {
  pool: pg.Pool;
  schema: string;
  logger: Logger;
  /** How often the leader takes what other replicas relayed (default 500 ms). */
  pollMs?: number;
  /** Deliveries older than this when a leader takes them are dropped: the next poll sees what they announced (default 10 min). */
  keepMs?: number;
  /** Called at the end of stop() (closes the relay's own connection). */
  close?: () => Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Webhook deliveries received by a standby autoscaler replica, passed to the leader through a
 * PostgreSQL table: the standby inserts one row per delivery; the leader takes every row (DELETE …
 * RETURNING, so two takers never get the same row) every pollMs and hands each to the instance's
 * reconciler, as if it had received it. A delivery that arrives while no replica leads waits in the
 * table for the next leader. Polling, not LISTEN/NOTIFY: nothing to re-subscribe after a database
 * restart, and the delay (≤ pollMs) is below the webhook debounce.
 */
export class WebhookRelay {
  private readonly table: string;
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private warned = false;
  private stopped = false;

  constructor(private readonly opts: WebhookRelayOptions) {
    if (!SCHEMA_NAME.test(opts.schema))
      throw new Error(`"${opts.schema}" is not a schema name: lower-case letters, digits and underscores`);
    this.table = `${opts.schema}.webhook_relay`;
  }

  async ensureSchema(): Promise<void> {
    await this.opts.pool.query(
      `CREATE TABLE IF NOT EXISTS ${this.table} (id bigserial PRIMARY KEY, instance text NOT NULL, delivery jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    );
  }

  /**
   * A sink that passes what the webhook routes hand it on: to `local` while `acting()` (this replica
   * leads), else into the table for the leader. A delivery that cannot be relayed is logged; the
   * next poll of Forgejo finds what it announced.
   */
  relaying(instance: string, local: DeliverySink, acting: () => boolean): DeliverySink {
    const send = (delivery: RelayedDelivery, here: () => void) => {
      if (acting()) return here();
      void this.publish(instance, delivery).catch((err) =>
        this.opts.logger.warn(
          { instance, err: errorMessage(err) },
          "could not relay a webhook delivery to the leading replica; the next poll of Forgejo finds the jobs",
        ),
      );
    };
    return {
      onWorkflowJob: (job) => send({ kind: "workflow_job", job }, () => local.onWorkflowJob(job)),
      onDelivery: (event) => send({ kind: "delivery", event }, () => local.onDelivery(event)),
    };
  }

  /** Passes a delivery received here to whichever replica leads (now or next). */
  async publish(instance: string, delivery: RelayedDelivery): Promise<void> {
    await this.opts.pool.query(`INSERT INTO ${this.table} (instance, delivery) VALUES ($1, $2)`, [instance, JSON.stringify(delivery)]);
  }

  /** Takes every relayed delivery, oldest first; those older than keepMs are dropped. */
  async take(): Promise<{ instance: string; delivery: RelayedDelivery }[]> {
    const keepMs = this.opts.keepMs ?? 600_000;
    const res = await this.opts.pool.query<{ id: string; instance: string; delivery: RelayedDelivery; stale: boolean }>(
      `DELETE FROM ${this.table} WHERE id IN (SELECT id FROM ${this.table} ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED)
       RETURNING id::text AS id, instance, delivery, received_at < clock_timestamp() - make_interval(secs => $1::double precision / 1000) AS stale`,
      [keepMs],
    );
    // RETURNING does not keep the subquery's order.
    return res.rows
      .filter((r) => !r.stale)
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map((r) => ({ instance: r.instance, delivery: r.delivery }));
  }

  /** The leader's loop: while `acting()`, hands relayed deliveries to `sinkFor(instance)`. */
  start(acting: () => boolean, sinkFor: (instance: string) => DeliverySink | undefined): void {
    const loop = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        if (acting()) this.draining = this.drainOnce(sinkFor).finally(loop);
        else loop();
      }, this.opts.pollMs ?? 500);
    };
    loop();
  }

  private async drainOnce(sinkFor: (instance: string) => DeliverySink | undefined): Promise<void> {
    let taken;
    try {
      taken = await this.take();
      if (this.warned) this.opts.logger.info("relayed webhook deliveries can be read again");
      this.warned = false;
    } catch (err) {
      if (!this.warned)
        this.opts.logger.warn(
          { err: errorMessage(err) },
          "cannot read webhook deliveries relayed by other replicas; polling Forgejo still finds the jobs",
        );
      this.warned = true;
      return;
    }
    for (const { instance, delivery } of taken) {
      const sink = sinkFor(instance);
      if (!sink) continue;
      if (delivery.kind === "workflow_job") sink.onWorkflowJob(delivery.job);
      else sink.onDelivery(delivery.event);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.draining;
    await this.opts.close?.();
  }
}
