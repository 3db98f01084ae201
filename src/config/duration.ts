// Go duration syntax ("1h30m", "20m", "90s", "1.5h") plus the d/w/y units nsc accepts.
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w|y)/y;

/** Parses a Go duration into milliseconds; returns undefined when the text is not one. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === "0") return 0;
  if (s.length === 0) return undefined;
  let i = 0;
  let total = 0;
  PART.lastIndex = 0;
  while (i < s.length) {
    PART.lastIndex = i;
    const m = PART.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    i = PART.lastIndex;
  }
  return Math.round(total);
}

/** Formats milliseconds the way Go prints a duration ("1h30m0s", "20m0s", "45s"); whole seconds only. */
export function formatDuration(ms: number): string {
  let secs = Math.max(0, Math.round(ms / 1000));
  if (secs === 0) return "0s";
  const h = Math.floor(secs / 3600);
  secs -= h * 3600;
  const m = Math.floor(secs / 60);
  secs -= m * 60;
  if (h > 0) return `${h}h${m}m${secs}s`;
  if (m > 0) return `${m}m${secs}s`;
  return `${secs}s`;
}
