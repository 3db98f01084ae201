import type { Figures, Wait } from "./figures.js";

/** One row of the comparison: which run, and what it came to. */
export interface Row {
  trace: string;
  loss: number;
  poll: string;
  policy: string;
  figures: Figures;
}

/** 14s, 3m05s, 2h10m; "≥" when a stranded job's wait was cut short by the end of the run. */
export function formatWait(w: Wait): string {
  const s = Math.round(w.ms / 1000);
  const text =
    s < 60
      ? `${s}s`
      : s < 3600
        ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
        : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return w.atLeast ? `≥${text}` : text;
}

const pct = (p: number) => `${Math.round(p * 100)}%`;

const COLUMNS: readonly { head: string; right: boolean; cell: (r: Row) => string }[] = [
  { head: "trace", right: false, cell: (r) => r.trace },
  { head: "loss", right: true, cell: (r) => pct(r.loss) },
  { head: "poll", right: true, cell: (r) => r.poll },
  { head: "policy", right: false, cell: (r) => r.policy },
  { head: "jobs", right: true, cell: (r) => String(r.figures.jobs) },
  { head: "wait p50", right: true, cell: (r) => formatWait(r.figures.p50) },
  { head: "wait p95", right: true, cell: (r) => formatWait(r.figures.p95) },
  { head: "wait max", right: true, cell: (r) => formatWait(r.figures.max) },
  { head: "stranded", right: true, cell: (r) => String(r.figures.stranded) },
  { head: "killed", right: true, cell: (r) => String(r.figures.killed) },
  { head: "instances", right: true, cell: (r) => String(r.figures.instances) },
  { head: "unused", right: true, cell: (r) => String(r.figures.unused) },
  {
    head: "taken/ttl/down",
    right: true,
    cell: (r) => `${r.figures.unusedBy.jobTaken}/${r.figures.unusedBy.expired}/${r.figures.unusedBy.retired}`,
  },
  { head: "idle inst-min", right: true, cell: (r) => r.figures.idleMinutes.toFixed(0) },
];

/** A Markdown table with padded columns: readable on a terminal, and pasted as is into docs. */
export function markdownTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => COLUMNS.map((c) => c.cell(r)));
  const width = COLUMNS.map((c, i) => Math.max(c.head.length, ...cells.map((row) => (row[i] as string).length)));
  const pad = (text: string, i: number) => (COLUMNS[i]?.right ? text.padStart(width[i] as number) : text.padEnd(width[i] as number));
  const line = (texts: readonly string[]) => `| ${texts.map(pad).join(" | ")} |`;
  const rule = `|${width.map((w, i) => (COLUMNS[i]?.right ? `${"-".repeat(w + 1)}:` : `${"-".repeat(w + 2)}`)).join("|")}|`;
  return [line(COLUMNS.map((c) => c.head)), rule, ...cells.map(line)].join("\n");
}
