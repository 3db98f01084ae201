import { max, measure, median } from "./measure.js";
import { BENCH_API_TOKEN, startBenchWorld } from "./world.js";

export interface LaunchResult {
  maxParallel: number;
  dispatches: number;
  /** From the first POST until every one had answered 202. */
  acceptMs: number;
  /** Latency of one POST (202), median and max. */
  postMs: { median: number; max: number };
  /** From the first POST until every runner was recorded running. */
  allRunningMs: number;
  launchesPerSecond: number;
  runCalls: number;
  peakInFlight: number;
  cpuMs: number;
  childCpuMs: number;
}

/**
 * Sends `dispatches` single-runner requests through the real HTTP API (a few at a time, as an
 * autoscaler would) and waits until every runner is `running`: accept, record, register with the
 * fake Forgejo, `nsc run`, record. The fake nsc's `createDelayMs` stands in for instance boot time.
 */
export async function launchThroughput(opts: {
  maxParallel: number;
  dispatches: number;
  launchDelayMs: number;
  clientConcurrency?: number;
}): Promise<LaunchResult> {
  const w = await startBenchWorld({ maxParallel: opts.maxParallel, knobs: { createDelayMs: opts.launchDelayMs } });
  try {
    await w.dispatcher.start();
    const url = await w.dispatcher.app.listen({ host: "127.0.0.1", port: 0 });
    let peakInFlight = 0;
    const probe = setInterval(() => {
      peakInFlight = Math.max(peakInFlight, w.dispatcher.scheduler.launchesInFlight);
    }, 20);
    const t0 = performance.now();
    let acceptMs = 0;
    const latencies: number[] = [];
    const { sample } = await measure(async () => {
      let next = 0;
      const client = async () => {
        while (next < opts.dispatches) {
          next += 1;
          const sent = performance.now();
          const res = await fetch(`${url}/api/v1/dispatch`, {
            method: "POST",
            headers: { authorization: `Bearer ${BENCH_API_TOKEN}`, "content-type": "application/json" },
            body: JSON.stringify({ labels: ["namespace-profile-linux-medium"], ttl: "30m" }),
          });
          if (res.status !== 202) throw new Error(`dispatch answered ${res.status}: ${await res.text()}`);
          await res.arrayBuffer();
          latencies.push(performance.now() - sent);
        }
      };
      await Promise.all(Array.from({ length: opts.clientConcurrency ?? 8 }, client));
      acceptMs = performance.now() - t0;
      const deadline = Date.now() + 30 * 60_000;
      while ((await w.deps.store.countRunners(["running"])) < opts.dispatches) {
        const failed = await w.deps.store.countRunners(["failed"]);
        if (failed > 0) throw new Error(`${failed} launches failed; see ${w.logFile}`);
        if (Date.now() > deadline) throw new Error("launches did not finish within 30 minutes");
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    clearInterval(probe);
    const allRunningMs = performance.now() - t0;
    return {
      maxParallel: opts.maxParallel,
      dispatches: opts.dispatches,
      acceptMs,
      postMs: { median: median(latencies), max: max(latencies) },
      allRunningMs,
      launchesPerSecond: opts.dispatches / (allRunningMs / 1000),
      runCalls: w.nsc.calls("run").length,
      peakInFlight,
      cpuMs: sample.cpuMs,
      childCpuMs: sample.childCpuMs,
    };
  } finally {
    await w.close();
  }
}
