import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { LEDGER_SUBDIR, LOGS_SUBDIR } from "./secrets.js";

export interface SecretSpec {
  value: string;
  /** Where the value comes from, shown instead of the value in a finding. */
  source: string;
}

export interface Finding {
  file: string;
  line: number;
  /** "value": a known secret appears verbatim; "field": a secret-named field carries an unredacted value. */
  kind: "value" | "field";
  what: string;
  /** The line with the secret masked, cut to a readable length. */
  excerpt: string;
}

export interface ScanReport {
  files: number;
  lines: number;
  bytes: number;
  secrets: number;
  findings: Finding[];
}

/** Shorter values would match ordinary words; every secret the suite uses is longer. */
const MIN_SECRET_LENGTH = 8;

/**
 * Field names that only ever hold a credential. A log line (JSON from pino, Caddy's access log) with
 * one of these keys must carry a redaction marker, whatever the value looks like: this is what
 * catches runner and registration tokens no test wrote down, without guessing from their shape.
 */
const SECRET_FIELD =
  /"(token|runner_token|registration_token|registrationToken|bearer_token|session_token|password|secret|webhook_secret|authorization|proxy-authorization|x-api-key)"\s*:\s*\[?\s*"([^"]*)"/gi;
const REDACTED_VALUES = new Set(["", "[redacted]", "redacted", "[Redacted]", "REDACTED"]);

function lineAt(text: string, index: number): { line: number; start: number; end: number } {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < index; i = text.indexOf("\n", i + 1)) line++;
  const start = text.lastIndexOf("\n", index - 1) + 1;
  const nl = text.indexOf("\n", index);
  return { line, start, end: nl === -1 ? text.length : nl };
}

function cut(s: string): string {
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

function mask(value: string): string {
  return `${value.slice(0, 3)}…(${value.length} chars)`;
}

/** Every regular file under `dir`, depth first. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/** Secrets recorded at run time with recordSecrets() (one per line in the ledger files). */
export function readLedger(scanDir: string): SecretSpec[] {
  const out: SecretSpec[] = [];
  for (const f of filesUnder(join(scanDir, LEDGER_SUBDIR))) {
    for (const v of readFileSync(f, "utf8").split("\n"))
      if (v) out.push({ value: v, source: `recorded at run time (${relative(scanDir, f)})` });
  }
  return out;
}

/**
 * Reads every log file under `<scanDir>/logs` and reports each place a known secret appears, and
 * each secret-named field whose value is not redacted. Pure over the directory: the global
 * teardown and the unit test call the same function.
 */
export function scanLogDirectory(scanDir: string, secrets: readonly SecretSpec[]): ScanReport {
  const bySecret = new Map<string, string>();
  for (const s of secrets) {
    if (s.value.length < MIN_SECRET_LENGTH)
      throw new Error(`secret from ${s.source} is shorter than ${MIN_SECRET_LENGTH} characters; a scan for it would match ordinary text`);
    if (!bySecret.has(s.value)) bySecret.set(s.value, s.source);
  }
  // Longest first, so a finding names the most specific secret when one contains another.
  const ordered = [...bySecret.entries()].sort((a, b) => b[0].length - a[0].length);
  const report: ScanReport = { files: 0, lines: 0, bytes: 0, secrets: bySecret.size, findings: [] };

  for (const file of filesUnder(join(scanDir, LOGS_SUBDIR))) {
    const text = readFileSync(file, "utf8");
    const name = relative(scanDir, file);
    report.files++;
    report.bytes += Buffer.byteLength(text);
    if (text.length > 0) report.lines += text.split("\n").length - (text.endsWith("\n") ? 1 : 0);

    const seen = new Set<string>();
    for (const [value, source] of ordered) {
      for (let i = text.indexOf(value); i !== -1; i = text.indexOf(value, i + value.length)) {
        const at = lineAt(text, i);
        const key = `${at.line}:${source}`;
        if (seen.has(key)) continue;
        seen.add(key);
        let excerpt = text.slice(at.start, at.end);
        for (const [v, src] of ordered) excerpt = excerpt.split(v).join(`<secret from ${src}>`);
        report.findings.push({ file: name, line: at.line, kind: "value", what: `secret from ${source}`, excerpt: cut(excerpt) });
      }
    }

    for (const m of text.matchAll(SECRET_FIELD)) {
      const [whole, field, value] = m as unknown as [string, string, string];
      if (REDACTED_VALUES.has(value) || REDACTED_VALUES.has(value.replace(/^(Bearer|Basic|token)\s+/i, ""))) continue;
      const at = lineAt(text, m.index ?? 0);
      const excerpt = text
        .slice(at.start, at.end)
        .split(whole)
        .join(whole.replace(value, mask(value)));
      report.findings.push({
        file: name,
        line: at.line,
        kind: "field",
        what: `field "${field}" carries an unredacted value`,
        excerpt: cut(excerpt),
      });
    }
  }
  return report;
}

export function formatReport(report: ScanReport): string {
  const mb = (report.bytes / 1_048_576).toFixed(1);
  const head = `secret scan: ${report.files} log files, ${report.lines} lines (${mb} MiB), ${report.secrets} secrets`;
  if (report.findings.length === 0) return `${head}: no secret found`;
  const list = report.findings.slice(0, 50).map((f) => `  ${f.file}:${f.line}: ${f.what}\n    ${f.excerpt}`);
  const more = report.findings.length > 50 ? [`  … and ${report.findings.length - 50} more`] : [];
  return [`${head}: ${report.findings.length} leak(s) found`, ...list, ...more].join("\n");
}
