import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import type { ResultPromise } from "execa";
import type { Logger } from "../http/logger.js";
import type { Metrics } from "../http/metrics.js";
import { isFlagSafe } from "./env-flags.js";
import type { InstanceInfo } from "./launcher.js";
import { NscError, classify, collapse, failedText, hintFor, instanceIdIn, redact, saysGone } from "./nsc-errors.js";
import type { NscErrorKind } from "./nsc-errors.js";

export interface NscCliOptions {
  /** Path or name of the nsc executable (namespace.nsc_binary). */
  binary: string;
  /** Passed as --region on every call: instance IDs are regional (contracts/nsc.md §1.3). */
  region?: string | undefined;
  /** NSC_TOKEN_FILE for every call. */
  tokenFile?: string | undefined;
  logger: Logger;
  metrics?: Metrics | undefined;
  /** Extra environment for nsc (merged over this process's environment). */
  env?: Record<string, string> | undefined;
  /** Outer time limits in ms; nsc has none of its own for most commands. */
  timeoutMs?: Partial<NscTimeouts> | undefined;
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
}

const DEFAULT_TIMEOUTS: NscTimeouts = { quick: 60_000, runMargin: 120_000, create: 8 * 60_000, ssh: 10 * 60_000, tunnel: 45_000 };

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

/** The `--output_json_to` record (contracts/nsc.md §5.3). May hold service credentials: never log it. */
export interface NscInstanceRecord {
  cluster_id: string;
  app_url?: string;
  created?: string;
  deadline?: string;
  shape?: { virtual_cpu?: number; memory_megabytes?: number; machine_arch?: string; os?: string };
  platform?: string[];
  label?: { name: string; value: string }[];
  service_state?: { name: string; status?: string; endpoint?: string; credentials?: { username: string; password: string } }[];
  [key: string]: unknown;
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

interface RawResult {
  stdout: string;
  stderr: string;
  exitCode?: number | undefined;
  signal?: string | undefined;
  timedOut: boolean;
  isCanceled: boolean;
  failed: boolean;
  code?: string | undefined;
}

/** Go duration text for a flag; whole seconds when possible ("300s"), else milliseconds. */
export function goDuration(ms: number): string {
  const n = Math.max(0, Math.round(ms));
  if (n === 0) return "0s";
  return n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`;
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

const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/**
 * Drives the nsc CLI (contracts/nsc.md): no shell, NS_DO_NOT_UPDATE=1, --region on every call,
 * results parsed from stdout only, failures turned into NscError with what to do.
 */
export class NscCli {
  readonly binary: string;
  readonly region: string | undefined;
  private readonly tokenFile: string | undefined;
  private readonly logger: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly extraEnv: Record<string, string>;
  readonly timeouts: NscTimeouts;

  constructor(opts: NscCliOptions) {
    this.binary = opts.binary;
    this.region = opts.region;
    this.tokenFile = opts.tokenFile;
    this.logger = opts.logger;
    this.metrics = opts.metrics;
    this.extraEnv = opts.env ?? {};
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeoutMs };
  }

  /** Starts a container instance; returns once it is ready (never waits for the container to end). */
  async run(opts: NscRunOptions): Promise<{ instanceId: string; clusterUrl?: string | undefined }> {
    const env = opts.env ?? {};
    const labels = opts.labels ?? {};
    for (const [k, v] of [...Object.entries(env), ...Object.entries(labels)]) {
      if (!isFlagSafe(v) || k.includes("=") || k === "") {
        throw new NscError(`cannot pass ${JSON.stringify(k)} to nsc run as -e/--label: nsc would misparse its value (it contains "=" with "," or a double quote); pass it through the bootstrap script`, "invalid", "run");
      }
    }
    for (const v of opts.volumes ?? []) {
      if (/[,"]/.test(v)) throw new NscError(`volume ${JSON.stringify(v)} contains a comma or a double quote, which nsc splits on: remove it from the cache tag or path`, "invalid", "run");
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
    const parsed = this.parseJson<{ instance_id?: string; cluster_id?: string; cluster_url?: string }>("run", out.stdout, secrets);
    const instanceId = parsed?.instance_id ?? parsed?.cluster_id;
    if (!instanceId) throw new NscError(`nsc run printed no instance_id or cluster_id: ${redact(collapse(out.stdout), secrets).slice(0, 200)}`, "transient", "run");
    return { instanceId, clusterUrl: parsed?.cluster_url };
  }

  /**
   * `nsc create` for macOS/Windows. It retries capacity forever, so an outer timeout bounds it; on
   * failure the thrown NscError carries the instance ID from the cidfile or the error text if any.
   */
  async create(opts: NscCreateOptions): Promise<{ instanceId: string; record: NscInstanceRecord }> {
    for (const [k, v] of Object.entries(opts.labels ?? {})) {
      if (!isFlagSafe(v)) throw new NscError(`cannot pass label ${JSON.stringify(k)} to nsc create: its value would be misparsed`, "invalid", "create");
    }
    const dir = await mkdtemp(join(tmpdir(), "forgejo-nsc-create-"));
    const cidfile = join(dir, "cid");
    const jsonFile = join(dir, "instance.json");
    const waitTimeoutMs = opts.waitTimeoutMs ?? 6 * 60_000;
    const args = ["create", "-o", "json", "--machine_type", opts.machineType, "--wait_timeout", goDuration(waitTimeoutMs), "--cidfile", cidfile, "--output_json_to", jsonFile];
    if (opts.durationMs && opts.durationMs > 0) args.push("--duration", goDuration(opts.durationMs));
    if (opts.bare) args.push("--bare");
    if (opts.selectors?.length) args.push("--selectors", opts.selectors.join(","));
    for (const f of opts.features ?? []) args.push("--features", f);
    for (const [k, v] of Object.entries(opts.labels ?? {})) args.push("--label", `${k}=${v}`);
    if (opts.purpose) args.push("--purpose", opts.purpose);
    for (const v of opts.volumes ?? []) args.push("--volume", v);
    const readCid = async (): Promise<string | undefined> => {
      const text = await readFile(cidfile, "utf8").catch(() => "");
      return text.trim() || undefined;
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
      const parsed = this.parseJson<{ instance_id?: string; cluster_id?: string }>("create", out.stdout, []);
      const cid = await readCid();
      const instanceId = parsed?.instance_id ?? parsed?.cluster_id ?? cid;
      if (!instanceId) throw new NscError("nsc create succeeded but printed no instance ID and wrote no cidfile", "transient", "create");
      const recordText = await readFile(jsonFile, "utf8").catch(() => "");
      let record: NscInstanceRecord = { cluster_id: instanceId };
      if (recordText.trim()) {
        try {
          record = JSON.parse(recordText) as NscInstanceRecord;
        } catch {
          throw new NscError(`nsc create wrote an unreadable --output_json_to file for instance ${instanceId}`, "transient", "create", instanceId);
        }
      }
      return { instanceId, record };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Every running instance with all these labels, including non-manual ones (`--all`). */
  async list(labels: Record<string, string>): Promise<InstanceInfo[]> {
    const args = ["list", "--all", "-o", "json"];
    for (const [k, v] of Object.entries(labels)) {
      if (!isFlagSafe(v)) throw new NscError(`cannot filter nsc list by label ${JSON.stringify(k)}: its value would be misparsed`, "invalid", "list");
      args.push("--label", `${k}=${v}`);
    }
    const out = await this.exec("list", args, { timeoutMs: this.timeouts.quick, secrets: [] });
    const parsed = this.parseJson<unknown>("list", out.stdout, []);
    if (parsed === null) return [];
    if (!Array.isArray(parsed)) throw new NscError("nsc list -o json printed something other than an array or null", "transient", "list");
    return parsed.flatMap((e: unknown): InstanceInfo[] => {
      if (!e || typeof e !== "object") return [];
      const o = e as { cluster_id?: unknown; instance_id?: unknown; labels?: unknown; created_at?: unknown };
      const id = typeof o.cluster_id === "string" && o.cluster_id ? o.cluster_id : typeof o.instance_id === "string" ? o.instance_id : "";
      if (!id) return [];
      const lbl: Record<string, string> = {};
      if (o.labels && typeof o.labels === "object") {
        for (const [k, v] of Object.entries(o.labels as Record<string, unknown>)) if (typeof v === "string") lbl[k] = v;
      }
      return [{ instanceId: id, labels: lbl, createdAt: typeof o.created_at === "string" && o.created_at ? o.created_at : undefined }];
    });
  }

  /** "gone" when nsc says the instance does not exist or is no longer running; other failures throw. */
  async describe(instanceId: string): Promise<NscDescribeResult> {
    this.checkId(instanceId, "describe");
    try {
      const out = await this.exec("describe", ["describe", "-o", "json", instanceId], { timeoutMs: this.timeouts.quick, secrets: [], goneIsOutcome: true });
      return { state: "running", raw: this.parseJson<unknown>("describe", out.stdout, []) };
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
  async ssh(instanceId: string, command: string | readonly string[], opts: { input?: string; timeoutMs?: number; secrets?: readonly string[]; signal?: AbortSignal } = {}): Promise<{ stdout: string; stderr: string }> {
    this.checkId(instanceId, "ssh");
    const words = typeof command === "string" ? [command] : [...command];
    const secrets = opts.secrets ?? [];
    return this.exec("ssh", ["ssh", instanceId, "-T", "--", ...words], { timeoutMs: opts.timeoutMs ?? this.timeouts.ssh, secrets, input: opts.input ?? "", signal: opts.signal });
  }

  /** `nsc instance port-forward <id> --target_port <p>`, ready once it prints `Listening on host:port`. */
  async portForward(instanceId: string, targetPort: number, opts: { timeoutMs?: number } = {}): Promise<NscTunnel> {
    this.checkId(instanceId, "port-forward");
    const { child, first } = await this.startLongRunning("port-forward", ["instance", "port-forward", instanceId, "--target_port", String(targetPort)], opts.timeoutMs, (line) => {
      const m = /^Listening on (\S+):(\d+)\s*$/.exec(line);
      return m ? { host: m[1] as string, port: Number(m[2]) } : undefined;
    });
    return { ...first, close: () => this.stop(child) };
  }

  /** `nsc instance proxy <id> -s <service> -o json`: a local endpoint for the service, plus its credentials if any. */
  async proxy(instanceId: string, service: string, opts: { timeoutMs?: number } = {}): Promise<NscProxy> {
    this.checkId(instanceId, "proxy");
    const { child, first } = await this.startLongRunning("proxy", ["instance", "proxy", instanceId, "-s", service, "-o", "json"], opts.timeoutMs, (line) => {
      if (!line.startsWith("{")) return undefined;
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        const endpoint = typeof j.endpoint === "string" ? j.endpoint : "";
        const at = endpoint.lastIndexOf(":");
        if (at < 0) return undefined;
        const svc = j[service] as { credentials?: { username: string; password: string } } | undefined;
        return { host: endpoint.slice(0, at), port: Number(endpoint.slice(at + 1)), credentials: svc?.credentials };
      } catch {
        return undefined;
      }
    });
    return { ...first, close: () => this.stop(child) };
  }

  /** Exit 0 when the credentials are good for at least `durationMs`. */
  async checkLogin(durationMs = 0): Promise<boolean> {
    try {
      await this.exec("auth check-login", ["auth", "check-login", "--duration", goDuration(durationMs)], { timeoutMs: this.timeouts.quick, secrets: [] });
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
    const r = (await execa(this.binary, this.argv(args), {
      env: this.env(),
      extendEnv: true,
      reject: false,
      shell: false,
      timeout: o.timeoutMs,
      forceKillAfterDelay: 5_000,
      ...(o.signal ? { cancelSignal: o.signal } : {}),
      ...(o.input !== undefined ? { input: o.input } : { stdin: "ignore" as const }),
      stripFinalNewline: false,
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    })) as unknown as RawResult;
    const ms = Date.now() - started;
    const log = { nsc: command, flags: flagNames(args), exitCode: r.exitCode ?? null, ms };
    if (!r.failed) {
      this.count(command, "ok");
      this.logger.debug(log, "nsc call");
      return { stdout: r.stdout, stderr: r.stderr };
    }
    const err = this.toError(command, r, o.timeoutMs, o.secrets);
    this.count(command, o.goneIsOutcome && err.kind === "gone" ? "gone" : err.kind);
    this.logger.debug({ ...log, kind: err.kind, signal: r.signal ?? null }, "nsc call failed");
    throw err;
  }

  private toError(command: string, r: RawResult, timeoutMs: number, secrets: readonly string[]): NscError {
    const allSecrets = [...secrets, ...secrets.map(collapse)];
    const stderr = redact(r.stderr ?? "", allSecrets);
    const id = instanceIdIn(stderr);
    if (r.code === "ENOENT" || r.code === "EACCES") {
      return new NscError(`cannot start nsc (${JSON.stringify(this.binary)}): ${r.code === "ENOENT" ? "not found" : "not executable"}; install nsc or set namespace.nsc_binary`, "invalid", command);
    }
    if (r.timedOut) {
      return new NscError(`nsc ${command} did not finish within ${Math.round(timeoutMs / 1000)}s and was stopped${id ? ` (instance ${id})` : ""}`, "timeout", command, id, undefined, null);
    }
    if (r.isCanceled) return new NscError(`nsc ${command} was cancelled${id ? ` (instance ${id})` : ""}`, "timeout", command, id, undefined, null);
    if (r.exitCode === undefined || r.exitCode === null) {
      return new NscError(`nsc ${command} was killed by ${r.signal ?? "a signal"}${id ? ` (instance ${id})` : ""}`, "transient", command, id, undefined, null);
    }
    const detail = failedText(stderr) ?? collapse(stderr.split("\n").filter(Boolean).slice(-3).join(" ")).slice(0, 500);
    const basis = detail || stderr;
    let kind: NscErrorKind = classify(basis);
    if (kind !== "auth" && saysGone(basis) && (command === "describe" || command === "destroy")) kind = "gone";
    const quoted = detail ? `: ${detail}` : ` with exit code ${r.exitCode} and no error text`;
    return new NscError(`nsc ${command} failed${quoted} — ${hintFor(kind, basis)}`, kind, command, id, detail || undefined, r.exitCode);
  }

  private parseJson<T>(command: string, stdout: string, secrets: readonly string[]): T | null {
    const text = stdout.trim();
    try {
      return JSON.parse(text) as T | null;
    } catch {
      this.count(command, "bad_output");
      throw new NscError(`nsc ${command} printed output that is not JSON (${JSON.stringify(redact(text, secrets).slice(0, 120))}); is namespace.nsc_binary really nsc?`, "transient", command);
    }
  }

  private async startLongRunning<T>(
    command: string,
    args: string[],
    timeoutMs: number | undefined,
    match: (line: string) => T | undefined,
  ): Promise<{ child: ResultPromise; first: T }> {
    const limit = timeoutMs ?? this.timeouts.tunnel;
    const child = execa(this.binary, this.argv(args), {
      env: this.env(),
      extendEnv: true,
      reject: false,
      shell: false,
      stdin: "ignore",
      buffer: false,
      encoding: "utf8",
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer | string) => {
      stderr = (stderr + String(d)).slice(-8192);
    });
    try {
      const first = await new Promise<T>((resolve, reject) => {
        let buf = "";
        const timer = setTimeout(() => reject(new NscError(`nsc ${command} did not get ready within ${Math.round(limit / 1000)}s`, "timeout", command)), limit);
        child.stdout?.on("data", (d: Buffer | string) => {
          buf += String(d);
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            const m = match(line.trim());
            if (m !== undefined) {
              clearTimeout(timer);
              resolve(m);
            }
          }
        });
        void child.then((r) => {
          clearTimeout(timer);
          const res = r as unknown as RawResult;
          reject(this.toError(command, { ...res, stderr, failed: true, exitCode: res.exitCode ?? undefined }, limit, []));
        });
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

  private async stop(child: ResultPromise): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await child.catch(() => undefined);
    clearTimeout(timer);
  }
}
