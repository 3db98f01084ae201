import type { Deployment } from "../deployment.js";
import type { DispatcherModel } from "../dispatcher.js";
import type { EventQueue } from "../events.js";
import type { Delivery, Forge } from "../forge.js";

/** What a policy may look at and act on: the clock, the forge, the dispatcher, the installation. */
export interface SimContext {
  q: EventQueue;
  forge: Forge;
  dispatcher: DispatcherModel;
  deployment: Deployment;
}

/** A way of deciding when to ask for runners. It sets its own timers on the fake clock. */
export interface Policy {
  /** Called once at the start of the run. */
  start(): void;
  /** A webhook delivery that was not lost. */
  onDelivery(d: Delivery): void;
}

export type PolicyFactory = (ctx: SimContext) => Policy;
