import type { Row } from "./table.js";

const COLORS: Record<string, string> = {
  original: "#d62728",
  "garm-like": "#ff7f0e",
  today: "#1f77b4",
  improved: "#2ca02c",
  auto: "#9467bd",
};
const PANEL = { w: 440, h: 300, left: 64, right: 16, top: 36, bottom: 46 };
const X_TICKS = [0, 1, 10, 100, 1000, 10000];
const Y_TICKS: readonly (readonly [number, string])[] = [
  [0, "0"],
  [10, "10s"],
  [60, "1m"],
  [600, "10m"],
  [3600, "1h"],
  [36000, "10h"],
];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
/** Both axes span zero to hours or thousands: log10(1 + v) keeps 0 on the chart and spreads the rest. */
const symlog = (v: number) => Math.log10(1 + Math.max(0, v));

/**
 * An SVG with one panel per trace: queue wait p95 (up) against idle instance-minutes (right), one
 * point per policy. Lower and further left is better; a ring marks a point drawn over another, a
 * triangle a p95 that is only a lower bound because jobs were stranded.
 */
export function chartSvg(rows: readonly Row[], caption: string): string {
  const traces = [...new Set(rows.map((r) => r.trace))];
  const cols = Math.min(2, traces.length);
  const width = cols * PANEL.w;
  const height = Math.ceil(traces.length / cols) * PANEL.h + 56;
  const xMax = symlog(X_TICKS.find((t) => t >= Math.max(1, ...rows.map((r) => r.figures.idleMinutes))) ?? 100000);
  const yMax = symlog(Y_TICKS.find(([t]) => t >= Math.max(10, ...rows.map((r) => r.figures.p95.ms / 1000)))?.[0] ?? 360000);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  traces.forEach((trace, i) => {
    const ox = (i % cols) * PANEL.w;
    const oy = Math.floor(i / cols) * PANEL.h;
    const pw = PANEL.w - PANEL.left - PANEL.right;
    const ph = PANEL.h - PANEL.top - PANEL.bottom;
    const x = (v: number) => ox + PANEL.left + (symlog(v) / xMax) * pw;
    const y = (seconds: number) => oy + PANEL.top + ph - (symlog(seconds) / yMax) * ph;
    out.push(`<text x="${ox + PANEL.left}" y="${oy + 22}" font-size="13" font-weight="bold">${esc(trace)}</text>`);
    out.push(`<rect x="${ox + PANEL.left}" y="${oy + PANEL.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
    for (const t of X_TICKS.filter((t) => symlog(t) <= xMax)) {
      out.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${oy + PANEL.top}" y2="${oy + PANEL.top + ph}" stroke="#eee"/>`);
      out.push(`<text x="${x(t)}" y="${oy + PANEL.top + ph + 14}" text-anchor="middle">${t}</text>`);
    }
    for (const [t, label] of Y_TICKS.filter(([t]) => symlog(t) <= yMax)) {
      out.push(`<line x1="${ox + PANEL.left}" x2="${ox + PANEL.left + pw}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/>`);
      out.push(`<text x="${ox + PANEL.left - 6}" y="${y(t) + 4}" text-anchor="end">${label}</text>`);
    }
    out.push(`<text x="${ox + PANEL.left + pw / 2}" y="${oy + PANEL.h - 12}" text-anchor="middle">idle instance-minutes</text>`);
    out.push(`<text transform="translate(${ox + 16},${oy + PANEL.top + ph / 2}) rotate(-90)" text-anchor="middle">wait p95</text>`);
    const seen: { px: number; py: number }[] = [];
    for (const r of rows.filter((r) => r.trace === trace)) {
      const px = x(r.figures.idleMinutes);
      const py = y(r.figures.p95.ms / 1000);
      const color = COLORS[r.policy] ?? "#555";
      // A point drawn over earlier ones becomes a ring around them, wider for each one below.
      const below = seen.filter((p) => Math.hypot(p.px - px, p.py - py) < 6).length;
      seen.push({ px, py });
      if (below > 0) out.push(`<circle cx="${px}" cy="${py}" r="${5 + 3 * below}" fill="none" stroke="${color}" stroke-width="2"/>`);
      else if (r.figures.p95.atLeast) out.push(`<path d="M${px},${py - 7} L${px + 6},${py + 4} L${px - 6},${py + 4} Z" fill="${color}"/>`);
      else out.push(`<circle cx="${px}" cy="${py}" r="5" fill="${color}"/>`);
    }
  });
  const policies = [...new Set(rows.map((r) => r.policy))];
  policies.forEach((p, k) => {
    const lx = PANEL.left + k * 130;
    out.push(`<circle cx="${lx}" cy="${height - 38}" r="5" fill="${COLORS[p] ?? "#555"}"/>`);
    out.push(`<text x="${lx + 10}" y="${height - 34}">${esc(p)}</text>`);
  });
  out.push(`<text x="${PANEL.left + policies.length * 130}" y="${height - 34}" fill="#444">▲ p95 is a lower bound: jobs stranded</text>`);
  out.push(`<text x="8" y="${height - 12}" fill="#444">${esc(caption)}</text>`);
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
