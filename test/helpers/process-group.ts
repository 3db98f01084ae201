import { readdirSync, readFileSync } from "node:fs";

/**
 * The live (non-zombie) processes of a process group, read from /proc. A zombie has ended: in
 * this sandbox orphans are re-parented to an init that may never reap them, so `kill(-pgid, 0)`
 * alone would call a finished group alive.
 */
export function liveProcessesInGroup(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // ended while we looked
    }
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] !== "Z" && Number(fields[2]) === pgid) out.push(Number(entry));
  }
  return out;
}
