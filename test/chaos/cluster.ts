import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { startProcess } from "../e2e/processes.js";
import type { TestProcess } from "../e2e/processes.js";
import { ROOT } from "../e2e/caddy.js";
import { freePort } from "../helpers/free-port.js";
import { waitFor } from "../helpers/wait.js";

export type Kind = "dispatcher" | "autoscaler";

/** One replica: a daemon process that can be killed, paused and started again on the same port. */
export class Replica {
  proc: TestProcess | undefined;
  /** Every pid this replica ran as (its lease holder ids contain the pid). */
  readonly pids: number[] = [];
  /** Output of earlier incarnations, kept for the checks. */
  private readonly earlier: { pid: number; stdout: string }[] = [];

  constructor(
    readonly kind: Kind,
    readonly name: string,
    readonly port: number,
    private readonly configPath: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const p = startProcess(
      `chaos-${this.name}`,
      process.execPath,
      ["--import", "tsx", join(ROOT, "src/bin", `${this.kind}.ts`), "--config", this.configPath],
      {
        cwd: ROOT,
        env: this.env,
      },
    );
    this.proc = p;
    if (p.child.pid) this.pids.push(p.child.pid);
    await waitFor(
      async () => {
        if (p.exit()) throw new Error(`${this.name} exited during start-up: ${p.stderr().slice(-2000)}`);
        return (await fetch(`${this.url}/healthz`).catch(() => undefined))?.ok;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: `${this.name} to answer /healthz` },
    );
  }

  /** SIGKILL: no shutdown, no lease release (a machine that died). */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    p.child.kill("SIGKILL");
    await p.exited;
    this.earlier.push({ pid: p.child.pid ?? 0, stdout: p.stdout() });
    this.proc = undefined;
  }

  signal(sig: "SIGSTOP" | "SIGCONT"): void {
    this.proc?.child.kill(sig);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    p.child.kill("SIGCONT");
    await p.stop(15_000);
    this.earlier.push({ pid: p.child.pid ?? 0, stdout: p.stdout() });
    this.proc = undefined;
  }

  /** The JSON log lines of every incarnation, by its pid. */
  incarnations(): { pid: number; lines: Record<string, unknown>[] }[] {
    const all = [...this.earlier, ...(this.proc ? [{ pid: this.proc.child.pid ?? 0, stdout: this.proc.stdout() }] : [])];
    return all.map(({ pid, stdout }) => ({ pid, lines: jsonLines(stdout) }));
  }

  /** What /readyz says about the lease (undefined while the process does not answer). */
  async role(): Promise<string | undefined> {
    if (!this.proc) return undefined;
    try {
      const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(1000) });
      return ((await res.json()) as { lease?: { role?: string } }).lease?.role;
    } catch {
      return undefined;
    }
  }
}

/** Writes a replica's config and returns the replica (not started). */
export async function makeReplica(
  kind: Kind,
  name: string,
  dir: string,
  config: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): Promise<Replica> {
  const port = await freePort();
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({ ...config, listen: `127.0.0.1:${port}` }), { mode: 0o600 });
  return new Replica(kind, name, port, path, env);
}

/**
 * The replica holding the lease now, by the lease table (the database decides, not what a replica
 * says), waiting until one of `replicas` does. On timeout the error lists each replica's last
 * lease log lines.
 */
export async function leader(
  replicas: readonly Replica[],
  holderNow: () => Promise<string | undefined>,
  timeoutMs = 30_000,
): Promise<Replica> {
  try {
    return await waitFor(
      async () => {
        const holder = await holderNow();
        return replicas.find((r) => r.proc && holder?.startsWith(`${r.name}:${r.proc.child.pid}:`));
      },
      { timeoutMs, intervalMs: 100, what: `one ${replicas[0]?.kind} replica to lead` },
    );
  } catch (err) {
    const tails = replicas.map((r) => {
      const lines = (r.incarnations().at(-1)?.lines ?? []).filter((l) => /lease|PostgreSQL|state database/i.test(String(l.msg)));
      return `${r.name}: ${lines
        .slice(-5)
        .map((l) => `${String(l.time)} ${String(l.msg)} ${String(l.err ?? "")}`)
        .join(" | ")}`;
    });
    throw new Error(`${(err as Error).message}\n${tails.join("\n")}`);
  }
}

function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of text.split("\n")) {
    if (!l.startsWith("{")) continue;
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      // a line cut by SIGKILL
    }
  }
  return out;
}

/** deploy/Caddyfile.replicas.example as a loopback test runs it: plain HTTP, no admin endpoint, the replicas' ports. */
export function caddyEnv(
  sites: { dispatcher: number; autoscaler: number },
  dispatchers: readonly Replica[],
  autoscalers: readonly Replica[],
): Record<string, string> {
  return {
    FORGEJO_NSC_DISPATCHER_DOMAIN: `http://127.0.0.1:${sites.dispatcher}`,
    FORGEJO_NSC_AUTOSCALER_DOMAIN: `http://127.0.0.1:${sites.autoscaler}`,
    FORGEJO_NSC_DISPATCHER_UPSTREAMS: dispatchers.map((r) => `127.0.0.1:${r.port}`).join(" "),
    FORGEJO_NSC_AUTOSCALER_UPSTREAMS: autoscalers.map((r) => `127.0.0.1:${r.port}`).join(" "),
  };
}

export function replicasCaddyfile(dataDir: string): string {
  const text = readFileSync(join(ROOT, "deploy/Caddyfile.replicas.example"), "utf8");
  if (!/^\{\n/m.test(text)) throw new Error("deploy/Caddyfile.replicas.example has no global options block; update test/chaos/cluster.ts");
  return text.replace(/^\{\n/m, `{\n\tauto_https off\n\tadmin off\n\tstorage file_system ${dataDir}\n`);
}
