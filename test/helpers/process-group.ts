import { readdirSync, readFileSync } from "node:fs";

/**
 * The live (non-zombie) processes of a process group, read from /proc. A zombie has ended: in
 * this sandbox orphans are re-parented to an init that may never reap them, so `kill(-pgid, 0)`
 * alone would call a finished group alive.
 */
export function liveProcessesInGroup(pgid: number): number[] {
  return liveProcesses()
    .filter((p) => p.pgid === pgid)
    .map((p) => p.pid);
}

/**
 * The process groups of `pid` and of every live process below it. Killing them all is what
 * systemd (KillMode=control-group) or the end of a container does to a daemon and everything it
 * started, including children that run in process groups of their own (nsc calls do).
 */
export function processTreeGroups(pid: number): number[] {
  const all = liveProcesses();
  const groups = new Set<number>([pid]);
  const below = new Set<number>([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (below.has(p.ppid) && !below.has(p.pid)) {
        below.add(p.pid);
        groups.add(p.pgid);
        grew = true;
      }
    }
  }
  return [...groups];
}

/** Every live (non-zombie) process: "pid (comm) state ppid pgrp …" from /proc/<pid>/stat. */
function liveProcesses(): { pid: number; ppid: number; pgid: number }[] {
  const out: { pid: number; ppid: number; pgid: number }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // ended while we looked
    }
    // comm may hold spaces and parentheses, so split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] !== "Z") out.push({ pid: Number(entry), ppid: Number(fields[1]), pgid: Number(fields[2]) });
  }
  return out;
}
