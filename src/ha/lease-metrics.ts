import { Counter, Gauge } from "prom-client";
import type { Registry } from "prom-client";
import type { Lease } from "./lease.js";

/**
 * What each replica does, for /metrics: whether it holds the lease (1: acts; 0: standby), the epoch
 * of its holding, and how often it gained and lost it. Read from the lease at scrape time.
 */
export function registerLeaseMetrics(registry: Registry, lease: Lease): void {
  new Gauge({
    name: "forgejo_nsc_lease_held",
    help: "1 while this replica holds the lease and acts (launches, supervises, sweeps, reconciles); 0 on a standby.",
    labelNames: ["lease", "role"] as const,
    registers: [registry],
    collect() {
      this.reset();
      const s = lease.status();
      this.set({ lease: lease.name, role: s.role }, s.role === "standby" ? 0 : 1);
    },
  });
  new Gauge({
    name: "forgejo_nsc_lease_epoch",
    help: "The fencing epoch of this replica's holding of the lease (0 when it does not hold it).",
    labelNames: ["lease"] as const,
    registers: [registry],
    collect() {
      this.set({ lease: lease.name }, lease.status().epoch ?? 0);
    },
  });
  let seen = { acquisitions: 0, losses: 0 };
  const changes = new Counter({
    name: "forgejo_nsc_lease_changes_total",
    help: "Times this replica gained (acquired) or lost (lost) the lease.",
    labelNames: ["lease", "change"] as const,
    registers: [registry],
    collect() {
      const s = lease.status();
      changes.inc({ lease: lease.name, change: "acquired" }, s.acquisitions - seen.acquisitions);
      changes.inc({ lease: lease.name, change: "lost" }, s.losses - seen.losses);
      seen = { acquisitions: s.acquisitions, losses: s.losses };
    },
  });
}
