import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";

/** Clock ticks per second for /proc times (almost always 100). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time of this process's children that have exited and been waited for (cutime + cstime in
 * /proc/self/stat), in ms: what the `nsc` processes the dispatcher spawned cost. Linux only;
 * 0 elsewhere.
 */
export function childCpuMs(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After "pid (comm) ", field 3 is state; cutime and cstime are fields 16 and 17.
    const cutime = Number(fields[16 - 3]);
    const cstime = Number(fields[17 - 3]);
    return ((cutime + cstime) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

export interface Sample {
  wallMs: number;
  /** This process (the dispatcher core), user + system. */
  cpuMs: number;
  /** The processes it spawned and reaped meanwhile (nsc). */
  childCpuMs: number;
}

/** Runs `fn` and measures wall time and CPU time of this process and of its reaped children. */
export async function measure<T>(fn: () => Promise<T>): Promise<{ value: T; sample: Sample }> {
  const cpu0 = process.cpuUsage();
  const child0 = childCpuMs();
  const t0 = performance.now();
  const value = await fn();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { value, sample: { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, childCpuMs: childCpuMs() - child0 } };
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export function rssMiB(): number {
  return process.memoryUsage().rss / 1024 / 1024;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function max(xs: readonly number[]): number {
  return xs.length ? Math.max(...xs) : NaN;
}

export const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

export function machine(): string {
  const c = cpus();
  return `${c.length} CPU (${c[0]?.model.trim() ?? "unknown"}), ${fmt(totalmem() / 1024 ** 3, 1)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}

/** The 1-minute load average: other work on the machine shows up in every wall time here. */
export function load(): string {
  return `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}`;
}
