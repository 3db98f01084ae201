import { setTimeout as sleep } from "node:timers/promises";
import { parseDuration } from "../../config/duration.js";
import { commaList } from "../../api/runner-view.js";
import { IN_FLIGHT_STATES, RUNNER_STATES, isOneOf } from "../../api/states.js";
import { resolveApiToken } from "../api-token.js";
import { noPositionals, parseFlags } from "../args.js";
import { CliError, UsageError } from "../errors.js";
import type { CliIo } from "../io.js";
import { readSecretFile } from "../secret-input.js";
import { fetchAutoscalerStatus, fetchRunner, fetchRunners } from "./fetch.js";
import type { Endpoint } from "./fetch.js";
import { renderRunner, renderStatus, statusJson, statusOk } from "./render.js";
import type { StatusReport } from "./render.js";

export const STATUS_USAGE = `Usage:
  forgejo-nsc status [flags]                 what is waiting, launching and running, and why
  forgejo-nsc status runner <name> [flags]   one runner's details and transition history

Flags:
  --dispatcher <url>             dispatcher API (default http://127.0.0.1:8080; "none" skips it)
  --autoscaler <url>             autoscaler API (default http://127.0.0.1:8081; "none" skips it)
  --token-file <file>            file holding the bearer token for both APIs
  --token <token>                the bearer token itself (visible to other local users in ps;
                                 prefer --token-file or FORGEJO_NSC_TOKEN)
  --autoscaler-token-file <file> a different token for the autoscaler
  --state <s1,s2|all>            dispatcher runner states to list
                                 (default pending,launching,running,finishing)
  --json                         print JSON instead of tables
  --watch <interval>             refresh every interval (Go duration such as 5s) until Ctrl-C
  --timeout <duration>           per request (default 5s)
  -h, --help                     this text

Environment:
  FORGEJO_NSC_TOKEN              bearer token when neither --token nor --token-file is given

Exit status: 0 when every daemon asked answered, 1 when one could not be read, 2 on bad flags.
`;

const OPTIONS = {
  dispatcher: { type: "string", default: "http://127.0.0.1:8080" },
  autoscaler: { type: "string", default: "http://127.0.0.1:8081" },
  token: { type: "string" },
  "token-file": { type: "string" },
  "autoscaler-token-file": { type: "string" },
  state: { type: "string" },
  json: { type: "boolean", default: false },
  watch: { type: "string" },
  timeout: { type: "string", default: "5s" },
  help: { type: "boolean", short: "h", default: false },
} as const;

function parseStates(text: string | undefined): string[] {
  if (text === undefined) return [...IN_FLIGHT_STATES];
  if (text.trim() === "all") return [...RUNNER_STATES];
  const states = commaList(text) ?? [];
  const bad = states.filter((s) => !isOneOf(RUNNER_STATES, s));
  if (bad.length > 0 || states.length === 0) {
    throw new UsageError(
      `--state: unknown state ${bad.map((b) => JSON.stringify(b)).join(", ") || "(empty)"}; use ${RUNNER_STATES.join(", ")} or all`,
      STATUS_USAGE,
    );
  }
  return states;
}

function parseInterval(flag: string, text: string, minMs: number): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms < minMs) {
    throw new UsageError(`${flag}: "${text}" is not a duration of at least ${minMs} ms (use Go syntax such as 5s or 1m)`, STATUS_USAGE);
  }
  return ms;
}

export async function statusCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, OPTIONS, STATUS_USAGE);
  if (values.help) {
    io.out(STATUS_USAGE);
    return 0;
  }
  const timeoutMs = parseInterval("--timeout", values.timeout, 100);
  const token = await resolveApiToken({ token: values.token, tokenFile: values["token-file"] }, io.env, STATUS_USAGE);
  const autoscalerToken = values["autoscaler-token-file"]
    ? await readSecretFile(values["autoscaler-token-file"], "the autoscaler API token", "--autoscaler-token-file")
    : token;
  const skip = (u: string) => u.trim() === "" || u.trim() === "none";
  const dispatcher: Endpoint | undefined = skip(values.dispatcher)
    ? undefined
    : { daemon: "dispatcher", url: values.dispatcher, token, timeoutMs };
  const autoscaler: Endpoint | undefined = skip(values.autoscaler)
    ? undefined
    : { daemon: "autoscaler", url: values.autoscaler, token: autoscalerToken, timeoutMs };

  if (positionals[0] === "runner") {
    noPositionals(positionals, STATUS_USAGE, 2);
    const name = positionals[1];
    if (!name) throw new UsageError("status runner: name the runner, e.g. forgejo-nsc status runner nscloud-1a2b3c", STATUS_USAGE);
    if (!dispatcher) throw new UsageError("status runner needs the dispatcher; do not pass --dispatcher none", STATUS_USAGE);
    if (values.watch !== undefined || values.state !== undefined)
      throw new UsageError("--watch and --state apply to the runner list, not to status runner", STATUS_USAGE);
    return runnerCommand(dispatcher, name, values.json, io);
  }
  noPositionals(positionals, STATUS_USAGE);
  if (!dispatcher && !autoscaler) throw new UsageError("both daemons are skipped; nothing to show", STATUS_USAGE);
  const states = parseStates(values.state);
  const watchMs = values.watch !== undefined ? parseInterval("--watch", values.watch, 100) : undefined;

  for (;;) {
    const [d, a] = await Promise.all([
      dispatcher ? fetchRunners(dispatcher, states) : undefined,
      autoscaler ? fetchAutoscalerStatus(autoscaler) : undefined,
    ]);
    const now = io.now();
    const report: StatusReport = { generatedAt: now.toISOString(), states, dispatcher: d, autoscaler: a };
    if (values.json) {
      io.out(JSON.stringify(statusJson(report), null, watchMs === undefined ? 2 : undefined) + "\n");
    } else {
      // A terminal gets a redrawn screen; a pipe or log gets one block per refresh.
      if (watchMs !== undefined) {
        io.out(
          `${io.stdoutIsTty ? "\x1b[2J\x1b[H" : ""}forgejo-nsc status at ${report.generatedAt} (every ${values.watch}; Ctrl-C stops)\n\n`,
        );
      }
      io.out(renderStatus(report, now));
    }
    const code = statusOk(report) ? 0 : 1;
    if (watchMs === undefined || io.signal.aborted) return code;
    if (!io.stdoutIsTty && !values.json) io.out("\n");
    // Aborting (Ctrl-C) ends the wait early; the loop then returns.
    await sleep(watchMs, undefined, { signal: io.signal }).catch(() => undefined);
    if (io.signal.aborted) return code;
  }
}

async function runnerCommand(ep: Endpoint, name: string, json: boolean, io: CliIo): Promise<number> {
  const r = await fetchRunner(ep, name);
  if (!r.ok) {
    if (r.status === 404 && !/no route/i.test(r.error)) {
      throw new CliError(
        `the dispatcher at ${ep.url} has no runner named "${name}": check the name in forgejo-nsc status --state all (finished runners are kept for dispatcher.retention, 7 days by default)`,
      );
    }
    throw new CliError(`${r.error}\nwhat to do: ${r.hint}`);
  }
  io.out(json ? JSON.stringify(r.data, null, 2) + "\n" : renderRunner(r.data, io.now()));
  return 0;
}
