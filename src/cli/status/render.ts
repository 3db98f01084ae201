import { formatAge, formatTable, since } from "../table.js";
import type { AutoscalerStatus, InstanceStatus, WaitingJob } from "./autoscaler-types.js";
import type { RunnerDetail, RunnerSummary } from "./dispatcher-types.js";
import type { DaemonResult } from "./fetch.js";

/** What `forgejo-nsc status` found; a daemon skipped with `--<daemon> none` is absent. */
export interface StatusReport {
  generatedAt: string;
  states: readonly string[];
  dispatcher?: DaemonResult<RunnerSummary[]> | undefined;
  autoscaler?: DaemonResult<AutoscalerStatus> | undefined;
}

export function statusOk(report: StatusReport): boolean {
  return (report.dispatcher?.ok ?? true) && (report.autoscaler?.ok ?? true);
}

/** "#42/2" for attempt 2; attempt 0 means no runner has taken the job yet, so it is left out. */
const attemptSuffix = (id: string, attempt: number | null | undefined) => (attempt ? `${id}/${attempt}` : id);

const dash = (v: string | number | undefined | null) => (v === undefined || v === null || v === "" ? "-" : String(v));

function jobText(job: RunnerSummary["job"]): string {
  if (!job) return "-";
  return attemptSuffix(`#${job.id}`, job.attempt);
}

function countByState(runners: readonly RunnerSummary[], order: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const r of runners) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  const known = order.filter((s) => counts.has(s));
  const other = [...counts.keys()].filter((s) => !order.includes(s)).sort();
  return [...known, ...other].map((s) => `${counts.get(s)} ${s}`).join(", ");
}

/** A daemon that could not be read: what happened in a word, then the error and what to do. */
function failed(name: string, r: Extract<DaemonResult<unknown>, { ok: false }>): string {
  return `${name} ${r.url}: ${failureHeadline(r)}\n  ${r.error}\n  what to do: ${r.hint}\n`;
}

function failureHeadline(r: Extract<DaemonResult<unknown>, { ok: false }>): string {
  if (r.status === 401) return "unauthorized: check the token";
  if (r.status === 403) return "forbidden";
  if (r.status !== undefined) return `answered ${r.status}`;
  if (r.kind === "bad_url") return "bad URL";
  if (r.kind === "not_json" || r.kind === "shape") return "unexpected answer";
  return "NOT REACHABLE";
}

function renderDispatcher(r: DaemonResult<RunnerSummary[]>, states: readonly string[], now: Date): string {
  if (!r.ok) return failed("Dispatcher", r);
  const runners = r.data;
  if (runners.length === 0) return `Dispatcher ${r.url}\n  no runners in state ${states.join(", ")}\n`;
  const rows = runners.map((x) => [
    x.name,
    x.state,
    formatAge(since(x.state_since ?? x.updated_at ?? x.created_at, now)),
    dash(x.platform),
    x.labels.length ? x.labels.join(",") : "-",
    jobText(x.job),
    dash(x.reason),
  ]);
  return (
    `Dispatcher ${r.url}\n  ${runners.length} runner${runners.length === 1 ? "" : "s"}: ${countByState(runners, states)}\n\n` +
    formatTable(["RUNNER", "STATE", "AGE", "PLATFORM", "LABELS", "JOB", "REASON"], rows, "  ")
  );
}

function agoText(iso: string | undefined, now: Date): string {
  const d = since(iso, now);
  if (d === undefined) return "-";
  return d >= 0 ? `${formatAge(d)} ago` : `in ${formatAge(-d)}`;
}

function serverText(i: InstanceStatus): string {
  if (!i.server) return "server not reached yet";
  const kind = i.server.kind === "forgejo" ? "Forgejo" : i.server.kind === "gitea" ? "Gitea" : i.server.kind;
  return `${kind} ${i.server.version.replace(/\+gitea-.*$/, "")}`;
}

function instanceHeader(i: InstanceStatus, now: Date): string {
  const poll = i.last_poll_at ? `last poll ${agoText(i.last_poll_at, now)}` : "not polled yet";
  const next = i.next_poll_at ? `next ${agoText(i.next_poll_at, now)}` : undefined;
  const head = [`instance ${i.name}`, serverText(i), `mode ${dash(i.mode)}`, poll, next].filter(Boolean).join("  |  ");
  const lines = [`  ${head}`];
  if (i.base_url || i.scope) lines.push(`  ${[i.base_url, i.scope ? `scope ${i.scope}` : undefined].filter(Boolean).join("  ")}`);
  if (i.startup_error) lines.push(`  CANNOT SERVE THIS INSTANCE: ${i.startup_error}`);
  if (i.last_error) lines.push(`  last error ${agoText(i.last_error.at, now)}: ${i.last_error.message}`);
  const w = i.webhook;
  if (w) {
    const setup = w.setup === "not_configured" || (!w.setup && !w.configured) ? "not managed" : dash(w.setup);
    const last = w.last_delivery_at
      ? `, last delivery ${agoText(w.last_delivery_at, now)}${w.last_delivery_event ? ` (${w.last_delivery_event})` : ""}`
      : ", no delivery yet";
    lines.push(`  webhook: ${setup}${w.message ? ` (${w.message})` : ""}${last}`);
  }
  return lines.join("\n") + "\n";
}

function waitingRows(jobs: readonly WaitingJob[], runnerByJob: Map<number, RunnerSummary> | undefined): string[][] {
  return jobs.map((j) => {
    return [
      attemptSuffix(`#${j.id}`, j.attempt),
      j.runs_on.length ? j.runs_on.join(",") : "-",
      dash(j.target),
      dash(j.state),
      dash(runnerByJob?.get(j.id)?.name),
      dash(j.reason),
    ];
  });
}

function renderAutoscaler(r: DaemonResult<AutoscalerStatus>, now: Date, runners: readonly RunnerSummary[] | undefined): string {
  if (!r.ok) return failed("Autoscaler", r);
  const instances = r.data.instances;
  let out = `Autoscaler ${r.url}\n`;
  if (instances.length === 0) return `${out}  no Forgejo instances configured\n`;
  // Job ids are only unique within one Forgejo instance, so runners are matched to jobs only when there is one.
  const runnerByJob =
    instances.length === 1 && runners ? new Map(runners.flatMap((x) => (x.job ? [[x.job.id, x] as const] : []))) : undefined;
  for (const inst of instances) {
    out += `\n${instanceHeader(inst, now)}`;
    if (inst.targets.length > 0) {
      const rows = inst.targets.map((t, idx) => [
        t.name ?? `#${idx + 1}`,
        t.labels.length ? t.labels.join(",") : "-",
        dash(t.waiting),
        dash(t.running),
        dash(t.idle),
        dash(t.in_flight),
        dash(t.min_idle),
        dash(t.max_runners),
        dash(t.note),
      ]);
      out += "\n" + formatTable(["TARGET", "LABELS", "WAITING", "RUNNING", "IDLE", "IN FLIGHT", "MIN IDLE", "CAP", "NOTE"], rows, "    ");
    }
    if (inst.waiting_jobs.length === 0) {
      out += "\n    no waiting jobs\n";
    } else {
      out += `\n    waiting jobs (${inst.waiting_jobs.length}):\n`;
      out += formatTable(
        ["JOB", "RUNS ON", "TARGET", "STATE", "RUNNER", "WHY NO RUNNER YET"],
        waitingRows(inst.waiting_jobs, runnerByJob),
        "    ",
      );
    }
  }
  return out;
}

/** The plain-text status: dispatcher runners first, then each autoscaler instance. */
export function renderStatus(report: StatusReport, now: Date): string {
  const parts: string[] = [];
  if (report.dispatcher) parts.push(renderDispatcher(report.dispatcher, report.states, now));
  if (report.autoscaler) {
    const runners = report.dispatcher?.ok ? report.dispatcher.data : undefined;
    parts.push(renderAutoscaler(report.autoscaler, now, runners));
  }
  return parts.join("\n");
}

/** The JSON status: the same facts, with errors and hints for daemons that did not answer. */
export function statusJson(report: StatusReport): unknown {
  const side = <T>(r: DaemonResult<T> | undefined, key: string) =>
    r === undefined
      ? { skipped: true }
      : r.ok
        ? { url: r.url, ok: true, [key]: r.data }
        : { url: r.url, ok: false, error: r.error, hint: r.hint, ...(r.status ? { status: r.status } : {}) };
  return {
    generated_at: report.generatedAt,
    ok: statusOk(report),
    dispatcher: side(report.dispatcher, "runners"),
    autoscaler: side(report.autoscaler, "status"),
  };
}

function when(iso: string | undefined, now: Date): string {
  if (!iso) return "-";
  const d = since(iso, now);
  if (d === undefined) return iso;
  return d >= 0 ? `${iso} (${formatAge(d)} ago)` : `${iso} (in ${formatAge(-d)})`;
}

/** One runner in detail, with its transition history oldest first. */
export function renderRunner(r: RunnerDetail, now: Date): string {
  const lastChange = r.history.length ? r.history[r.history.length - 1]?.at : undefined;
  const job = r.job
    ? [`#${r.job.id}`, r.job.attempt !== undefined ? `attempt ${r.job.attempt}` : "", r.job.handle ? `handle ${r.job.handle}` : ""]
        .filter(Boolean)
        .join("  ")
    : "- (not pinned to a job)";
  const fields: [string, string][] = [
    ["Runner", r.name],
    ["State", `${r.state} for ${formatAge(since(r.state_since ?? lastChange ?? r.updated_at, now))}`],
    ["Reason", dash(r.reason)],
    ["Platform", [dash(r.platform), r.machine_type ? `machine ${r.machine_type}` : ""].filter(Boolean).join("  ")],
    ["Labels", r.labels.length ? r.labels.join(", ") : "-"],
    ["Scope", dash(r.scope_key ?? r.scope?.level)],
    ["Job", job],
    ["Dispatch", dash(r.dispatch_id)],
    ["Instance", dash(r.instance_id)],
    ["Created", when(r.created_at, now)],
    ["Launched", when(r.launched_at, now)],
    ["Expires", when(r.expires_at, now)],
    ["Finished", when(r.finished_at, now)],
  ];
  let out = fields.map(([k, v]) => `${k.padEnd(10)}${v}`).join("\n") + "\n\nHistory\n";
  if (r.history.length === 0) return `${out}  (none recorded)\n`;
  const rows = r.history.map((t) => [t.at, dash(t.from), t.to, dash(t.reason)]);
  out += formatTable(["AT", "FROM", "TO", "REASON"], rows, "  ");
  return out;
}
