import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jsonOr } from "../helpers/fetch-json.js";
import { freePort } from "../helpers/free-port.js";
import { waitFor } from "../helpers/wait.js";
import { startProcess } from "./processes.js";
import type { TestProcess } from "./processes.js";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const EXAMPLE_CADDYFILE = join(ROOT, "deploy/Caddyfile.example");

/**
 * Loopback is the only network a test may use, so two loopback addresses play the two sides of the
 * example's /metrics rule: 127.0.0.1 is the private network (Prometheus, the operator), 127.0.0.2
 * the internet. Linux routes all of 127.0.0.0/8 to lo, so a client can bind either as its source.
 */
export const PRIVATE_CLIENT = "127.0.0.1";
export const OUTSIDE_CLIENT = "127.0.0.2";

/** The path of the caddy binary, or an error saying how to get it (never a silent skip). */
export function caddyBinary(): string {
  try {
    return execFileSync("sh", ["-c", "command -v caddy"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error(
      "Caddy is not installed, and the Caddy end-to-end test needs the real server. Install Debian's package " +
        "(apt-get update && apt-get install -y caddy); .ci/run does this when `command -v caddy` fails.",
    );
  }
}

export interface CaddyfileParams {
  dispatcherPort: number;
  autoscalerPort: number;
  dataDir: string;
}

function replaceOnce(text: string, pattern: RegExp, replacement: string, what: string): string {
  const matches = text.match(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`));
  if (!matches || matches.length === 0) {
    throw new Error(
      `deploy/Caddyfile.example no longer contains ${what} (${pattern}); update test/e2e/caddy.ts to the example's new shape`,
    );
  }
  return text.replace(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`), replacement);
}

/**
 * The shipped example, changed only where a loopback test must: plain HTTP (the site addresses come
 * from the example's own {$FORGEJO_NSC_*_DOMAIN} variables, see caddyEnv), no admin endpoint, the
 * daemons' real ports, and "private network" narrowed to 127.0.0.1. Every directive the example
 * uses (body limits, path policy, header edits, the access log filter) is what runs here.
 */
export function testCaddyfile(p: CaddyfileParams): string {
  let text = readFileSync(EXAMPLE_CADDYFILE, "utf8");
  // The global options block is the first block of the file, a "{" line of its own.
  text = replaceOnce(text, /^\{\n/m, `{\n\tauto_https off\n\tadmin off\n\tstorage file_system ${p.dataDir}\n`, "a global options block");
  text = replaceOnce(
    text,
    /reverse_proxy 127\.0\.0\.1:8080\b/,
    `reverse_proxy 127.0.0.1:${p.dispatcherPort}`,
    "the dispatcher upstream 127.0.0.1:8080",
  );
  text = replaceOnce(
    text,
    /reverse_proxy 127\.0\.0\.1:8081\b/,
    `reverse_proxy 127.0.0.1:${p.autoscalerPort}`,
    "the autoscaler upstream 127.0.0.1:8081",
  );
  text = replaceOnce(text, /(@outside_private not remote_ip) [^\n]+/, `$1 ${PRIVATE_CLIENT}/32`, "the @outside_private matcher");
  return text;
}

export interface Caddy {
  readonly process: TestProcess;
  readonly dispatcherUrl: string;
  readonly autoscalerUrl: string;
  readonly caddyfile: string;
}

/** Picks Caddy's two ports (before the daemons start: the autoscaler's webhook URL names one). */
export async function caddyPorts(): Promise<{ dispatcher: number; autoscaler: number }> {
  return { dispatcher: await freePort(), autoscaler: await freePort() };
}

/** Writes the test Caddyfile into `dir`, starts `caddy run` and waits until both sites proxy /healthz. */
export async function startCaddy(opts: {
  dir: string;
  ports: { dispatcher: number; autoscaler: number };
  upstreams: { dispatcher: number; autoscaler: number };
  timeoutMs: number;
}): Promise<Caddy> {
  const bin = caddyBinary();
  const dataDir = join(opts.dir, "caddy-data");
  mkdirSync(dataDir, { recursive: true });
  const caddyfile = join(opts.dir, "Caddyfile");
  writeFileSync(
    caddyfile,
    testCaddyfile({ dispatcherPort: opts.upstreams.dispatcher, autoscalerPort: opts.upstreams.autoscaler, dataDir }),
  );
  const dispatcherUrl = `http://127.0.0.1:${opts.ports.dispatcher}`;
  const autoscalerUrl = `http://127.0.0.1:${opts.ports.autoscaler}`;
  const proc = startProcess("caddy", bin, ["run", "--config", caddyfile, "--adapter", "caddyfile"], {
    cwd: opts.dir,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      // Caddy keeps state under HOME / XDG dirs; keep it in the test's directory.
      HOME: opts.dir,
      XDG_CONFIG_HOME: join(opts.dir, "xdg-config"),
      XDG_DATA_HOME: join(opts.dir, "xdg-data"),
      FORGEJO_NSC_DISPATCHER_DOMAIN: dispatcherUrl,
      FORGEJO_NSC_AUTOSCALER_DOMAIN: autoscalerUrl,
    },
  });
  const caddy: Caddy = { process: proc, dispatcherUrl, autoscalerUrl, caddyfile };
  await waitFor(
    async () => {
      const ended = proc.exit();
      if (ended) throw new Error(`caddy exited during start-up (${JSON.stringify(ended)}):\n${proc.stderr().slice(-3000)}`);
      const [d, a] = await Promise.all([send(`${dispatcherUrl}/healthz`), send(`${autoscalerUrl}/healthz`)]);
      return d.status === 200 && a.status === 200;
    },
    { timeoutMs: opts.timeoutMs, intervalMs: 100, what: "Caddy to proxy /healthz of both daemons" },
  );
  return caddy;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // Test code reads arbitrary JSON bodies.
  json: any;
}

/**
 * One HTTP request from a chosen loopback source address (node:http, which can bind the local
 * address; fetch cannot). No Accept-Encoding is sent, so Caddy's `encode` leaves bodies plain.
 */
export function send(
  url: string,
  opts: { method?: string; from?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolveReply, reject) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: Number(u.port),
        path: `${u.pathname}${u.search}`,
        method: opts.method ?? "GET",
        localAddress: opts.from ?? PRIVATE_CLIENT,
        headers: { ...(opts.body !== undefined ? { "content-length": String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers },
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolveReply({ status: res.statusCode ?? 0, headers: res.headers, text, json: jsonOr(text, undefined) });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${opts.method ?? "GET"} ${url} timed out`)));
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}
