import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { z } from "zod";
import type { Logger } from "../http/logger.js";
import type { Metrics } from "../http/metrics.js";
import { isFlagSafe } from "./env-flags.js";
import type { InstanceInfo } from "./launcher.js";
import { NscError, classify, collapse, failedText, hintFor, instanceIdIn, redact, saysGone } from "./nsc-errors.js";
import type { NscErrorKind } from "./nsc-errors.js";
import {
  INSTANCE_ID,
  createdOutput,
  describeMismatch,
  describeOutput,
  instanceRecord,
  listOutput,
  proxyLine,
  proxyService,
} from "./nsc-output.js";
import type { NscInstanceRecord } from "./nsc-output.js";
import { firstMatchingLine, runBounded, spawnGroup, stopGroup } from "./nsc-process.js";
import type { BoundedRunResult } from "./nsc-process.js";

export type { NscInstanceRecord } from "./nsc-output.js";

export interface NscCliOptions {
  /** Path or name of the nsc executable (namespace.nsc_binary). */
  binary: string;
  /**
   * Passed as --region on every call: instance IDs are regional
   * (docs/upstream-contracts.md#nsc-region-and-endpoint).
   */
  region?: string | undefined;
  /** NSC_TOKEN_FILE for every call. */
  tokenFile?: string | undefined;
  logger: Logger;
  metrics?: Metrics | undefined;
  /** Extra environment for nsc (merged over this process's environment). */
  env?: Record<string, string> | undefined;
  /** Outer time limits in ms; nsc has none of its own for most commands. */
  timeoutMs?: Partial<NscTimeouts> | undefined;
  /** The most stdout read from one call (default 16 MiB); a larger answer is an error, not held in memory. */
  maxOutputBytes?: number | undefined;
}

export interface NscTimeouts {
  /** list, describe, destroy, auth. */
  quick: number;
  /** Added to --wait_timeout for `run` (image pull, API calls). */
  runMargin: number;
  /** `create` retries capacity forever; this bounds it. */
  create: number;
  ssh: number;
  /** Waiting for port-forward's `Listening on` / proxy's JSON line. */
  tunnel: number;
  /** Between SIGTERM and SIGKILL to the process group of a call that ran out of time. */
  killGrace: number;
}

/** The flags of a long-running command's result: ours never stop it before it is ready or ends. */
const NOT_STOPPED = { timedOut: false, cancelled: false, overflowed: false } as const;

const DEFAULT_TIMEOUTS: NscTimeouts = {
  quick: 60_000,
  runMargin: 120_000,
  create: 8 * 60_000,
  ssh: 10 * 60_000,
  tunnel: 45_000,
  killGrace: 5_000,
};
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

export interface NscRunOptions {
  image: string;
  /** Container name (--name); not the instance ID. */
  name?: string | undefined;
  machineType?: string | undefined;
  /** The instance deadline (--duration); 0 or absent leaves it to the workspace default. */
  durationMs?: number | undefined;
  /** How long nsc waits for READY (--wait_timeout); nsc's default is 1m. */
  waitTimeoutMs?: number | undefined;
  user?: string | undefined;
  network?: string | undefined;
  /** `{cache|persistent}:{tag}:{mountpoint}[:{size}]` each. */
  volumes?: readonly string[] | undefined;
  /** Passed as -e; every value must be flag-safe (see env-flags.ts), else this throws. */
  env?: Record<string, string> | undefined;
  /** Instance labels (--label). */
  labels?: Record<string, string> | undefined;
  /** --documented_purpose (nsc v0.0.499+). */
  purpose?: string | undefined;
  /** The container argv, placed after `--`. */
  command: readonly string[];
  /** Values to keep out of logs and errors besides the env values. */
  secrets?: readonly string[] | undefined;
  signal?: AbortSignal | undefined;
}

export interface NscCreateOptions {
  machineType: string;
  durationMs?: number | undefined;
  bare?: boolean | undefined;
  selectors?: readonly string[] | undefined;
  features?: readonly string[] | undefined;
  labels?: Record<string, string> | undefined;
  purpose?: string | undefined;
  volumes?: readonly string[] | undefined;
  /** nsc's wait for READY (--wait_timeout, default 6m here). */
  waitTimeoutMs?: number | undefined;
  /** The outer limit (default NscTimeouts.create): create retries capacity forever. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface NscDescribeResult {
  state: "running" | "gone";
  /** The parsed `describe -o json` summary (null when nsc printed null); undefined when gone. */
  raw?: unknown;
}

export interface NscTunnel {
  host: string;
  port: number;
  /** Stops the nsc process. */
  close(): Promise<void>;
}

export interface NscProxy extends NscTunnel {
  /** Credentials nsc printed for the service, if it has any. Never log them. */
  credentials?: { username: string; password: string } | undefined;
}

/** Go duration text for a flag; whole seconds when possible ("300s"), else milliseconds. */
export function goDuration(ms: number): string {
  const n = Math.max(0, Math.round(ms));
  if (n === 0) return "0s";
  return n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`;
}

/** "2s" (rounded) from a second up, "300ms" below: for messages. */
function shortDuration(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)}s` : `${Math.round(ms)}ms`;
}

function formatBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}

/** Flag names of an argv, for logs: values (env, labels, scripts) never get logged. */
function flagNames(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (a === "--") break;
    if (a.startsWith("-")) out.push(a.split("=")[0] as string);
  }
  return out;
}

/**
 * Drives the nsc CLI (docs/upstream-contracts.md#nsc-cli): no shell, NS_DO_NOT_UPDATE=1, --region
 * on every call, results parsed from stdout only, failures turned into NscError with what to do.
 */
export class NscCli {
  readonly binary: string;
  readonly region: string | undefined;
  private readonly tokenFile: string | undefined;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly extraEnv: Record<string, string>;
  readonly timeouts: NscTimeouts;
  private readonly maxOutputBytes: number;

  constructor(opts: NscCliOptions) {
    this.binary = opts.binary;
    this.region = opts.region;
    this.tokenFile = opts.tokenFile;
    this.logger = opts.logger;
    this.metrics = opts.metrics;
    this.extraEnv = opts.env ?? {};
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeoutMs };
    this.maxOutputBytes = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  }

  /** Starts a container instance; returns once it is ready (never waits for the container to end). */
  async run(opts: NscRunOptions): Promise<{ instanceId: string; clusterUrl?: string | undefined }> {
    const env = opts.env ?? {};
    const labels = opts.labels ?? {};
    for (const [k, v] of [...Object.entries(env), ...Object.entries(labels)]) {
      if (!isFlagSafe(v) || k.includes("=") || k === "") {
        throw new NscError(
          `cannot pass ${JSON.stringify(k)} to nsc run as -e/--label: nsc would misparse its value (it contains "=" with "," or a double quote); pass it through the bootstrap script`,
          "invalid",
          "run",
        );
      }
    }
    for (const v of opts.volumes ?? []) {
      if (/[,"]/.test(v))
        throw new NscError(
          `volume ${JSON.stringify(v)} contains a comma or a double quote, which nsc splits on: remove it from the cache tag or path`,
          "invalid",
          "run",
        );
    }
    const waitTimeoutMs = opts.waitTimeoutMs ?? 60_000;
    const args = ["run", "-o", "json", "--image", opts.image, "--wait_timeout", goDuration(waitTimeoutMs)];
    if (opts.name) args.push("--name", opts.name);
    if (opts.machineType) args.push("--machine_type", opts.machineType);
    if (opts.durationMs && opts.durationMs > 0) args.push("--duration", goDuration(opts.durationMs));
    if (opts.user) args.push("--user", opts.user);
    if (opts.network) args.push("--network", opts.network);
    for (const v of opts.volumes ?? []) args.push("--volume", v);
    for (const [k, v] of Object.entries(env)) args.push("-e", `${k}=${v}`);
    for (const [k, v] of Object.entries(labels)) args.push("--label", `${k}=${v}`);
    if (opts.purpose) args.push("--documented_purpose", opts.purpose);
    args.push("--", ...opts.command);
    const secrets = [...Object.values(env), ...(opts.secrets ?? [])];
    const out = await this.exec("run", args, { timeoutMs: waitTimeoutMs + this.timeouts.runMargin, secrets, signal: opts.signal });
    const parsed = this.parseJson("run", out.stdout, createdOutput, secrets);
    return { instanceId: (parsed.instance_id ?? parsed.cluster_id) as string, clusterUrl: parsed.cluster_url };
  }

  /**
   * `nsc create` for macOS/Windows. It retries capacity forever, so an outer timeout bounds it; on
   * failure the thrown NscError carries the instance ID from the cidfile or the error text if any.
   */
  async create(opts: NscCreateOptions): Promise<{ instanceId: string; record: NscInstanceRecord }> {
    for (const [k, v] of Object.entries(opts.labels ?? {})) {
      if (!isFlagSafe(v))
        throw new NscError(`cannot pass label ${JSON.stringify(k)} to nsc create: its value would be misparsed`, "invalid", "create");
    }
    const dir = await mkdtemp(join(tmpdir(), "forgejo-nsc-create-"));
    const cidfile = join(dir, "cid");
    const jsonFile = join(dir, "instance.json");
    const waitTimeoutMs = opts.waitTimeoutMs ?? 6 * 60_000;
    const args = [
      "create",
      "-o",
      "json",
      "--machine_type",
      opts.machineType,
      "--wait_timeout",
      goDuration(waitTimeoutMs),
      "--cidfile",
      cidfile,
      "--output_json_to",
      jsonFile,
    ];
    if (opts.durationMs && opts.durationMs > 0) args.push("--duration", goDuration(opts.durationMs));
    if (opts.bare) args.push("--bare");
    if (opts.selectors?.length) args.push("--selectors", opts.selectors.join(","));
    for (const f of opts.features ?? []) args.push("--features", f);
    for (const [k, v] of Object.entries(opts.labels ?? {})) args.push("--label", `${k}=${v}`);
    if (opts.purpose) args.push("--purpose", opts.purpose);
    for (const v of opts.volumes ?? []) args.push("--volume", v);
    // Only an ID that can be passed back to nsc counts; anything else in the file is ignored.
    const readCid = async (): Promise<string | undefined> => {
      const text = (await readFile(cidfile, "utf8").catch(() => "")).trim();
      return INSTANCE_ID.test(text) ? text : undefined;
    };
    try {
      let out: { stdout: string };
      try {
        out = await this.exec("create", args, { timeoutMs: opts.timeoutMs ?? this.timeouts.create, secrets: [], signal: opts.signal });
      } catch (err) {
        const cid = await readCid();
        if (err instanceof NscError && cid && !err.instanceId) {
          throw new NscError(`${err.message} (instance ${cid} was created)`, err.kind, err.command, cid, err.detail, err.exitCode);
        }
        throw err;
      }
      const cid = await readCid();
      const parsed = this.parseJson("create", out.stdout, createdOutput, [], cid);
      const instanceId = (parsed.instance_id ?? parsed.cluster_id) as string;
      const recordText = await readFile(jsonFile, "utf8").catch(() => "");
      let record: NscInstanceRecord = { cluster_id: instanceId };
      if (recordText.trim())
        record = this.parseJson("create", recordText, instanceRecord, [], instanceId, "wrote an --output_json_to file");
      return { instanceId, record };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Every running instance with all these labels, including non-manual ones (`--all`). */
  async list(labels: Record<string, string>): Promise<InstanceInfo[]> {
    const args = ["list", "--all", "-o", "json"];
    for (const [k, v] of Object.entries(labels)) {
      if (!isFlagSafe(v))
        throw new NscError(`cannot filter nsc list by label ${JSON.stringify(k)}: its value would be misparsed`, "invalid", "list");
      args.push("--label", `${k}=${v}`);
    }
    const out = await this.exec("list", args, { timeoutMs: this.timeouts.quick, secrets: [] });
    // One malformed entry fails the whole look: an instance silently missing from the list would
    // count as ended and its runner would be finished.
    const parsed = this.parseJson("list", out.stdout, listOutput, []);
    return (parsed ?? []).map((e) => ({ instanceId: e.cluster_id, labels: { ...e.labels }, createdAt: e.created_at || undefined }));
  }

  /** "gone" when nsc says the instance does not exist or is no longer running; other failures throw. */
  async describe(instanceId: string): Promise<NscDescribeResult> {
    this.checkId(instanceId, "describe");
    try {
      const out = await this.exec("describe", ["describe", "-o", "json", instanceId], {
        timeoutMs: this.timeouts.quick,
        secrets: [],
        goneIsOutcome: true,
      });
      return { state: "running", raw: this.parseJson("describe", out.stdout, describeOutput, [], instanceId) };
    } catch (err) {
      if (err instanceof NscError && err.kind === "gone") return { state: "gone" };
      throw err;
    }
  }

  /** Destroys an instance (always --force); one that is already gone counts as destroyed. */
  async destroy(instanceId: string): Promise<void> {
    this.checkId(instanceId, "destroy");
    try {
      await this.exec("destroy", ["destroy", "--force", instanceId], { timeoutMs: this.timeouts.quick, secrets: [], goneIsOutcome: true });
    } catch (err) {
      if (err instanceof NscError && err.kind === "gone") return;
      throw err;
    }
  }

  /**
   * Runs a command on the instance (`nsc ssh <id> -T -- <command>`). nsc joins the words with
   * spaces for the remote shell, so pass one pre-quoted string or feed a script on `input`.
   */
  async ssh(
    instanceId: string,
    command: string | readonly string[],
    opts: { input?: string; timeoutMs?: number; secrets?: readonly string[]; signal?: AbortSignal } = {},
  ): Promise<{ stdout: string; stderr: string }> {
    this.checkId(instanceId, "ssh");
    const words = typeof command === "string" ? [command] : [...command];
    const secrets = opts.secrets ?? [];
    return this.exec("ssh", ["ssh", instanceId, "-T", "--", ...words], {
      timeoutMs: opts.timeoutMs ?? this.timeouts.ssh,
      secrets,
      input: opts.input ?? "",
      signal: opts.signal,
    });
  }

  /** `nsc instance port-forward <id> --target_port <p>`, ready once it prints `Listening on host:port`. */
  async portForward(instanceId: string, targetPort: number, opts: { timeoutMs?: number } = {}): Promise<NscTunnel> {
    this.checkId(instanceId, "port-forward");
    const { child, first } = await this.startLongRunning(
      "port-forward",
      ["instance", "port-forward", instanceId, "--target_port", String(targetPort)],
      opts.timeoutMs,
      (line) => {
        const m = /^Listening on (\S+):(\d+)\s*$/.exec(line);
        return m ? { host: m[1] as string, port: Number(m[2]) } : undefined;
      },
    );
    return { ...first, close: () => this.stop(child) };
  }

  /** `nsc instance proxy <id> -s <service> -o json`: a local endpoint for the service, plus its credentials if any. */
  async proxy(instanceId: string, service: string, opts: { timeoutMs?: number } = {}): Promise<NscProxy> {
    this.checkId(instanceId, "proxy");
    const { child, first } = await this.startLongRunning(
      "proxy",
      ["instance", "proxy", instanceId, "-s", service, "-o", "json"],
      opts.timeoutMs,
      (line) => {
        if (!line.startsWith("{")) return undefined;
        let j: unknown;
        try {
          j = JSON.parse(line);
        } catch {
          return undefined;
        }
        const head = proxyLine.safeParse(j);
        const svc = proxyService.safeParse(head.success ? head.data[service] : undefined);
        if (!head.success || !svc.success) {
          const mismatch = describeMismatch((head.error ?? svc.error) as z.ZodError);
          throw new NscError(
            `nsc proxy printed a line forgejo-nsc cannot use (${mismatch}); check that namespace.nsc_binary is nsc`,
            "transient",
            "proxy",
            instanceId,
          );
        }
        const endpoint = head.data.endpoint;
        const at = endpoint.lastIndexOf(":");
        return { host: endpoint.slice(0, at), port: Number(endpoint.slice(at + 1)), credentials: svc.data?.credentials };
      },
    );
    return { ...first, close: () => this.stop(child) };
  }

  /** Exit 0 when the credentials are good for at least `durationMs`. */
  async checkLogin(durationMs = 0): Promise<boolean> {
    try {
      await this.exec("auth check-login", ["auth", "check-login", "--duration", goDuration(durationMs)], {
        timeoutMs: this.timeouts.quick,
        secrets: [],
      });
      return true;
    } catch (err) {
      if (err instanceof NscError && (err.kind === "auth" || err.exitCode === 1)) return false;
      throw err;
    }
  }

  // -------------------------------------------------------------------------------------------

  private checkId(id: string, command: string): void {
    if (!INSTANCE_ID.test(id)) throw new NscError(`invalid instance ID ${JSON.stringify(id)} for nsc ${command}`, "invalid", command);
  }

  private env(): Record<string, string> {
    const env: Record<string, string> = { ...this.extraEnv, NS_DO_NOT_UPDATE: "1" };
    if (this.tokenFile) env.NSC_TOKEN_FILE = this.tokenFile;
    return env;
  }

  private argv(args: readonly string[]): string[] {
    return this.region ? ["--region", this.region, ...args] : [...args];
  }

  private count(command: string, outcome: string): void {
    this.metrics?.namespaceCalls.inc({ api: "nsc", command, outcome });
  }

  private async exec(
    command: string,
    args: string[],
    o: { timeoutMs: number; secrets: readonly string[]; input?: string; signal?: AbortSignal | undefined; goneIsOutcome?: boolean },
  ): Promise<{ stdout: string; stderr: string }> {
    const started = Date.now();
    const r = await runBounded(this.binary, this.argv(args), {
      env: { ...process.env, ...this.env() },
      input: o.input,
      timeoutMs: o.timeoutMs,
      killGraceMs: this.timeouts.killGrace,
      maxStdoutBytes: this.maxOutputBytes,
      signal: o.signal,
    });
    const ms = Date.now() - started;
    const log = { nsc: command, flags: flagNames(args), exitCode: r.exitCode, ms };
    if (r.exitCode === 0 && !r.timedOut && !r.cancelled && !r.overflowed) {
      this.count(command, "ok");
      this.logger.debug(log, "nsc call");
      return { stdout: r.stdout, stderr: r.stderr };
    }
    const err = this.toError(command, r, o.timeoutMs, o.secrets);
    this.count(command, o.goneIsOutcome && err.kind === "gone" ? "gone" : r.overflowed ? "bad_output" : err.kind);
    this.logger.debug({ ...log, kind: err.kind, signal: r.signal }, "nsc call failed");
    throw err;
  }

  private toError(command: string, r: Omit<BoundedRunResult, "stdout">, timeoutMs: number, secrets: readonly string[]): NscError {
    const allSecrets = [...secrets, ...secrets.map(collapse)];
    const stderr = redact(r.stderr, allSecrets);
    const id = instanceIdIn(stderr);
    const at = id ? ` (instance ${id})` : "";
    const code = r.spawnError?.code;
    if (code === "ENOENT" || code === "EACCES") {
      return new NscError(
        `cannot start nsc (${JSON.stringify(this.binary)}): ${code === "ENOENT" ? "not found" : "not executable"}; install nsc or set namespace.nsc_binary`,
        "invalid",
        command,
      );
    }
    if (r.spawnError) {
      return new NscError(
        `cannot start nsc ${command} (${code ?? r.spawnError.message}); this is usually temporary (too many open files or processes) and is retried`,
        "transient",
        command,
      );
    }
    if (r.overflowed) {
      return new NscError(
        `nsc ${command} printed more than ${formatBytes(this.maxOutputBytes)} on stdout and was stopped; no answer this large is expected: check that namespace.nsc_binary is nsc and how many instances carry our labels (nsc list --all)`,
        "transient",
        command,
        id,
        undefined,
        null,
      );
    }
    if (r.timedOut) {
      return new NscError(
        `nsc ${command} did not finish within ${shortDuration(timeoutMs)} and was stopped${at}`,
        "timeout",
        command,
        id,
        undefined,
        null,
      );
    }
    if (r.cancelled) return new NscError(`nsc ${command} was cancelled${at}`, "timeout", command, id, undefined, null);
    if (r.exitCode === null) {
      return new NscError(`nsc ${command} was killed by ${r.signal ?? "a signal"}${at}`, "transient", command, id, undefined, null);
    }
    const detail = failedText(stderr) ?? collapse(stderr.split("\n").filter(Boolean).slice(-3).join(" ")).slice(0, 500);
    const basis = detail || stderr;
    let kind: NscErrorKind = classify(basis);
    if (kind !== "auth" && saysGone(basis) && (command === "describe" || command === "destroy")) kind = "gone";
    const quoted = detail ? `: ${detail}` : ` with exit code ${r.exitCode} and no error text`;
    return new NscError(`nsc ${command} failed${quoted} — ${hintFor(kind, basis)}`, kind, command, id, detail || undefined, r.exitCode);
  }

  /**
   * Parses an answer and checks it against its schema. A mismatch is an NscError naming the field
   * and what was expected, never the values (a create record holds service passwords).
   */
  private parseJson<S extends z.ZodType>(
    command: string,
    text: string,
    schema: S,
    secrets: readonly string[],
    instanceId?: string,
    what = "printed output",
  ): z.output<S> {
    let value: unknown;
    try {
      value = JSON.parse(text.trim());
    } catch {
      this.count(command, "bad_output");
      throw new NscError(
        `nsc ${command} ${what} that is not JSON (${JSON.stringify(redact(text.trim(), secrets).slice(0, 120))}); is namespace.nsc_binary really nsc?`,
        "transient",
        command,
        instanceId,
      );
    }
    const checked = schema.safeParse(value);
    if (!checked.success) {
      this.count(command, "bad_output");
      throw new NscError(
        `nsc ${command} ${what} forgejo-nsc cannot use (${describeMismatch(checked.error)}); check that namespace.nsc_binary is nsc v0.0.480 or newer`,
        "transient",
        command,
        instanceId,
      );
    }
    return checked.data;
  }

  private async startLongRunning<T>(
    command: string,
    args: string[],
    timeoutMs: number | undefined,
    match: (line: string) => T | undefined,
  ): Promise<{ child: ChildProcess; first: T }> {
    const limit = timeoutMs ?? this.timeouts.tunnel;
    const child = this.spawnLongRunning(command, args, limit);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + String(d)).slice(-8192);
    });
    try {
      const first = await firstMatchingLine(child, match, limit, {
        timedOut: () => new NscError(`nsc ${command} did not get ready within ${shortDuration(limit)}`, "timeout", command),
        ended: (spawnError) =>
          this.toError(command, { ...NOT_STOPPED, stderr, exitCode: child.exitCode, signal: child.signalCode, spawnError }, limit, []),
      });
      this.count(command, "ok");
      this.logger.debug({ nsc: command, flags: flagNames(args) }, "nsc tunnel ready");
      return { child, first };
    } catch (err) {
      await this.stop(child);
      const e = err instanceof NscError ? err : new NscError(String(err), "transient", command);
      this.count(command, e.kind);
      throw e;
    }
  }

  /** Starts a long-running nsc command in its own group; a spawn that throws is counted and thrown as NscError. */
  private spawnLongRunning(command: string, args: string[], limit: number): ChildProcess {
    try {
      return spawnGroup(this.binary, this.argv(args), { env: { ...process.env, ...this.env() }, stdin: "ignore" });
    } catch (err) {
      const e = this.toError(
        command,
        { ...NOT_STOPPED, stderr: "", exitCode: null, signal: null, spawnError: err as NodeJS.ErrnoException },
        limit,
        [],
      );
      this.count(command, e.kind);
      throw e;
    }
  }

  private stop(child: ChildProcess): Promise<void> {
    return stopGroup(child, this.timeouts.killGrace);
  }
}
