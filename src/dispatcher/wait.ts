import type { IncomingMessage } from "node:http";
import type { RunnerRecord, RunnerState } from "../store/types.js";
import type { DispatcherContext } from "./context.js";

/** How often a waiting response looks at the records again: another replica's changes raise no local event. */
export const WAIT_POLL_MS = 1000;

/**
 * Holds a response until every named runner reaches one of `states`, the timeout passes, or the
 * client goes away. Only the response waits: a disconnect cancels nothing. Changes this process
 * makes end the wait at once; with replicas, changes another one makes (it launched the runner)
 * within WAIT_POLL_MS.
 */
export async function waitForRunners(
  ctx: DispatcherContext,
  names: readonly string[],
  states: readonly RunnerState[],
  timeoutMs: number,
  client: IncomingMessage,
): Promise<{ runners: RunnerRecord[]; complete: boolean }> {
  const load = async () => (await Promise.all(names.map((n) => ctx.records.store.getRunner(n)))).filter((r): r is RunnerRecord => !!r);
  const reached = (rs: RunnerRecord[]) => rs.length === names.length && rs.every((r) => states.includes(r.state));
  const wanted = new Set(names);
  await new Promise<void>((resolve) => {
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      off();
      clearTimeout(timer);
      clearInterval(poll);
      client.socket?.off("close", done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    // With replicas (ctx.acting set) the runner may be launched elsewhere: look again now and then.
    const poll = ctx.acting
      ? setInterval(
          () =>
            void load().then(
              (rs) => reached(rs) && done(),
              () => {},
            ),
          WAIT_POLL_MS,
        )
      : undefined;
    const off = ctx.records.onChange((r) => {
      if (!wanted.has(r.name) || !states.includes(r.state)) return;
      void load().then((rs) => reached(rs) && done());
    });
    client.socket?.once("close", done);
    // The state may already be reached before we subscribed.
    void load().then((rs) => reached(rs) && done());
  });
  const runners = await load();
  return { runners, complete: reached(runners) };
}
