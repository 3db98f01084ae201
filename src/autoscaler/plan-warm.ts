import type { ActionRunJob } from "../forgejo/types.js";
import { warmKey } from "./keys.js";
import { emit } from "./plan-pass.js";
import type { TargetPass } from "./plan-pass.js";

/** The warm pool's top-up for one target, decided before the jobs are served. */
export interface WarmReserve {
  need: number;
  note: string | undefined;
  /** Waiting jobs the warm runners asked for now will take (they get none of their own). */
  byWarm: ActionRunJob[];
}

/**
 * The warm pool's top-up, counting what stays free once the waiting jobs are served. Warm runners
 * asked for now take the oldest jobs beyond the free ones, as well as a pinned runner would: such
 * a job gets none of its own, so no two boots race for it. They come out of the room first (they
 * serve the older jobs); the pool refills on a later pass.
 */
export function reserveWarm(pass: TargetPass, free: number, forFree: readonly ActionRunJob[]): WarmReserve {
  const { input, t } = pass;
  let need = Math.max(0, t.minIdle - Math.max(0, free - forFree.length));
  let note: string | undefined;
  if (need > 0 && input.registeredFailed) {
    note = "runner list unavailable this pass; warm pool not topped up";
    need = 0;
  }
  const byWarm = input.pinEveryJob
    ? []
    : forFree
        .slice(free)
        .filter((j) => j.handle && input.handles)
        .slice(0, Math.min(need, pass.room));
  pass.room -= byWarm.length;
  return { need, note, byWarm };
}

/**
 * Asks for the warm runners: those reserved for jobs, then the rest of the top-up as room allows,
 * reusing keys still unanswered before new ones. `seq.used` counts the new keys across targets.
 */
export function topUpWarm(pass: TargetPass, w: WarmReserve, seq: { used: number }): { warmIntents: number; warmNote: string | undefined } {
  const { input, t } = pass;
  let warmNote = w.note;
  pass.room += w.byWarm.length;
  if (w.need > pass.room) warmNote = `${w.need - Math.max(0, pass.room)} warm runner(s) short: ${pass.atCapReason()}`;
  const outstanding = [...(input.warm.outstanding.get(t.name) ?? [])];
  let warmIntents = 0;
  for (let i = 0; i < w.need && pass.room > 0; i++) {
    const key = outstanding.shift() ?? warmKey(input.instance, t.name, input.warm.boot, input.warm.nextSeq + seq.used++);
    emit(pass, { key, target: t.name, count: 1, kind: "warm" });
    warmIntents++;
  }
  return { warmIntents, warmNote };
}
