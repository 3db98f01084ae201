import type { Deployment } from "./deployment.js";
import { DispatcherModel } from "./dispatcher.js";
import { EventQueue } from "./events.js";
import type { Figures } from "./figures.js";
import { figures } from "./figures.js";
import { Forge } from "./forge.js";
import type { PolicyFactory } from "./policies/policy.js";
import { Rng } from "./rng.js";
import type { Trace } from "./trace.js";

export interface RunOptions {
  trace: Trace;
  deployment: Deployment;
  policy: PolicyFactory;
  /** Probability that a webhook delivery is lost. */
  loss: number;
  /** Seeds the boot times (the trace has its own seed). */
  seed: number;
  /** How long the run goes on after the trace's end; jobs without a runner by then are stranded. */
  drainMs?: number;
}

/** Runs one trace under one policy on the fake clock and returns the figures. */
export async function simulate(opts: RunOptions): Promise<Figures> {
  if (!(opts.loss >= 0 && opts.loss <= 1)) throw new Error(`loss must be a probability between 0 and 1, got ${opts.loss}`);
  const q = new EventQueue(opts.trace.start);
  const forge = new Forge(q, { loss: opts.loss, deliveryLatencyMs: opts.deployment.deliveryLatencyMs }, opts.trace.jobs);
  const dispatcher = new DispatcherModel(q, forge, new Rng(opts.seed).fork("boot"), opts.deployment.dispatcher);
  const policy = opts.policy({ q, forge, dispatcher, deployment: opts.deployment });
  forge.listen({ runnerExited: (name) => dispatcher.runnerExited(name), delivered: (d) => policy.onDelivery(d) });
  q.at(opts.trace.start, () => policy.start());
  const end = opts.trace.end + (opts.drainMs ?? 3 * 3_600_000);
  await q.runUntil(end);
  return figures([...forge.jobs.values()], dispatcher.instances, end);
}
