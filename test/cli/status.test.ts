import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AutoscalerStatus } from "../../src/autoscaler/status.js";
import { runCli } from "../../src/cli/main.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";
import { memoryIo } from "./memory-io.js";
import { deadUrl, startStubDaemon } from "./stub-daemon.js";
import type { StubRequest } from "./stub-daemon.js";

const NOW = new Date("2026-08-01T12:00:00.000Z");
const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();
const TOKEN = "status-test-token-5f3a9c1e7d2b4a68";

const RUNNERS = [
  {
    name: "nscloud-aaa",
    dispatch_id: "d-1",
    state: "running",
    reason: "instance ready; forgejo-runner took the job",
    platform: "linux",
    labels: ["namespace-profile-linux-medium"],
    scope: { level: "repository", owner: "acme", name: "app" },
    scope_key: "repo:acme/app",
    job: { id: 42, attempt: 1, handle: "9d52c7d8" },
    instance_id: "abcdefghijklm",
    created_at: ago(300_000),
    updated_at: ago(252_000),
    expires_at: new Date(NOW.getTime() + 1_500_000).toISOString(),
  },
  {
    name: "nscloud-bbb",
    dispatch_id: "d-2",
    state: "pending",
    reason: "waiting for a launch slot: cap repo:acme/* reached (2 of 2)",
    platform: "macos",
    labels: ["namespace-profile-macos-large"],
    scope: { level: "instance" },
    scope_key: "instance",
    job: null,
    instance_id: null,
    created_at: ago(30_000),
    updated_at: ago(30_000),
    expires_at: null,
  },
  {
    name: "nscloud-ccc",
    dispatch_id: "d-3",
    state: "launching",
    reason: "nsc run in progress (attempt 1 of 3)",
    platform: "linux",
    labels: ["namespace-profile-linux-medium"],
    scope: { level: "repository", owner: "acme", name: "app" },
    scope_key: "repo:acme/app",
    job: { id: 43, attempt: null, handle: null },
    instance_id: null,
    created_at: ago(65_000),
    updated_at: ago(65_000),
    expires_at: null,
  },
];

const AUTOSCALER_STATUS: AutoscalerStatus = {
  instances: [
    {
      name: "forgejo",
      base_url: "https://forgejo.example.com",
      scope: "repo:acme/app",
      server: { kind: "forgejo", version: "15.0.3+gitea-1.22.0", job_handles: true, runner_list: true },
      mode: "polling",
      mode_reason: null,
      startup_error: null,
      last_poll_at: ago(3_000),
      last_success_at: ago(3_000),
      last_error: { at: ago(120_000), message: "GET /api/v1/repos/acme/app/actions/runners/jobs: Forgejo answered 502" },
      next_poll_at: new Date(NOW.getTime() + 7_000).toISOString(),
      webhook: {
        configured: true,
        setup: "ok",
        message: null,
        last_delivery_at: ago(40_000),
        last_delivery_event: "action_run_success",
        workflow_job_seen: false,
      },
      targets: [
        {
          name: "linux-medium",
          labels: ["namespace-profile-linux-medium"],
          waiting: 2,
          running: 1,
          idle: 0,
          in_flight: 2,
          min_idle: 1,
          min_idle_period: null,
          max_runners: 5,
          note: null,
        },
      ],
      waiting_jobs: [
        {
          id: 43,
          attempt: 0,
          handle: "h-43",
          runs_on: ["namespace-profile-linux-medium"],
          target: "linux-medium",
          state: "in_flight",
          reason: "runner requested from the dispatcher",
        },
        {
          id: 44,
          attempt: null,
          handle: null,
          runs_on: ["gpu"],
          target: null,
          state: "unmatched",
          reason: "no target has every label of gpu",
        },
      ],
    },
  ],
};

const HISTORY = [
  { at: ago(300_000), from: null, to: "pending", reason: "accepted" },
  { at: ago(290_000), from: "pending", to: "launching", reason: "launch slot free" },
  { at: ago(252_000), from: "launching", to: "running", reason: "instance ready; forgejo-runner took the job" },
];

function dispatcherHandler(req: StubRequest) {
  if (req.method === "GET" && req.path === "/api/v1/runners") {
    const states = (req.query.get("state") ?? "").split(",");
    return { status: 200, body: { runners: RUNNERS.filter((r) => states.includes(r.state)) } };
  }
  const m = /^\/api\/v1\/runners\/([^/]+)$/.exec(req.path);
  if (req.method === "GET" && m) {
    const r = RUNNERS.find((x) => x.name === decodeURIComponent(m[1]!));
    if (!r) return { status: 404, body: { error: "not_found", message: `no runner named ${m[1]}` } };
    return { status: 200, body: { ...r, history: HISTORY } };
  }
  return undefined;
}

function autoscalerHandler(req: StubRequest) {
  if (req.method === "GET" && req.path === "/api/v1/status") return { status: 200, body: AUTOSCALER_STATUS };
  return undefined;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function daemons(token: string | undefined = TOKEN) {
  const d = await startStubDaemon({ token, handle: dispatcherHandler });
  const a = await startStubDaemon({ token, handle: autoscalerHandler });
  cleanups.push(d.close, a.close);
  return { d, a };
}

const lineWith = (text: string, needle: string) => text.split("\n").find((l) => l.includes(needle)) ?? "";

describe("forgejo-nsc status", () => {
  it("prints runners and the autoscaler's view, with ages from the injected clock, sending the bearer", async () => {
    const { d, a } = await daemons();
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    const code = await runCli(["status", "--dispatcher", d.url, "--autoscaler", a.url], m.io);
    const out = m.stdout();
    expect(m.stderr()).toBe("");
    expect(code).toBe(0);

    expect(d.requests).toHaveLength(1);
    expect(d.requests[0]!.path).toBe("/api/v1/runners");
    expect(d.requests[0]!.query.get("state")).toBe("pending,launching,running,finishing");
    expect(d.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(a.requests[0]!.path).toBe("/api/v1/status");
    expect(a.requests[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);

    expect(out).toContain(`Dispatcher ${d.url}`);
    expect(out).toContain("3 runners: 1 pending, 1 launching, 1 running");
    expect(out).toMatch(/RUNNER\s+STATE\s+AGE\s+PLATFORM\s+LABELS\s+JOB\s+REASON/);
    expect(lineWith(out, "nscloud-aaa")).toMatch(
      /nscloud-aaa\s+running\s+4m12s\s+linux\s+namespace-profile-linux-medium\s+#42\/1\s+instance ready; forgejo-runner took the job$/,
    );
    expect(lineWith(out, "nscloud-bbb")).toMatch(
      /pending\s+30s\s+macos\s+namespace-profile-macos-large\s+-\s+waiting for a launch slot: cap repo:acme\/\* reached \(2 of 2\)$/,
    );
    expect(lineWith(out, "nscloud-ccc")).toMatch(/launching\s+1m05s\s+linux\s+\S+\s+#43\s+nsc run in progress/);

    expect(out).toContain(`Autoscaler ${a.url}`);
    expect(lineWith(out, "instance forgejo")).toBe(
      "  instance forgejo  |  Forgejo 15.0.3  |  mode polling  |  last poll 3s ago  |  next in 7s",
    );
    expect(out).toContain("  https://forgejo.example.com  scope repo:acme/app\n");
    expect(out).toContain("  last error 2m00s ago: GET /api/v1/repos/acme/app/actions/runners/jobs: Forgejo answered 502\n");
    expect(out).toContain("  webhook: ok, last delivery 40s ago (action_run_success)\n");
    expect(out).toMatch(/TARGET\s+LABELS\s+WAITING\s+RUNNING\s+IDLE\s+IN FLIGHT\s+MIN IDLE\s+CAP\s+NOTE/);
    expect(lineWith(out, "    linux-medium")).toMatch(/^ {4}linux-medium\s+namespace-profile-linux-medium\s+2\s+1\s+0\s+2\s+1\s+5\s+-$/);
    expect(out).toContain("waiting jobs (2):");
    // Job 43 is matched to the dispatcher runner that serves it.
    expect(lineWith(out, "in_flight")).toMatch(
      /#43\s+namespace-profile-linux-medium\s+linux-medium\s+in_flight\s+nscloud-ccc\s+runner requested from the dispatcher$/,
    );
    expect(lineWith(out, "#44")).toMatch(/#44\s+gpu\s+-\s+unmatched\s+-\s+no target has every label of gpu$/);
    expect(m.all()).not.toContain(TOKEN);
  });

  it("--json prints the same facts as one JSON document", async () => {
    const { d, a } = await daemons();
    const m = memoryIo({ now: () => NOW });
    const code = await runCli(["status", "--json", "--token", TOKEN, "--dispatcher", d.url, "--autoscaler", a.url], m.io);
    expect(code).toBe(0);
    const doc = JSON.parse(m.stdout()) as {
      ok: boolean;
      generated_at: string;
      dispatcher: { ok: boolean; url: string; runners: { name: string; state: string; job?: { id: number } }[] };
      autoscaler: { ok: boolean; status: { instances: { name: string; waiting_jobs: { id: number; reason: string }[] }[] } };
    };
    expect(doc.ok).toBe(true);
    expect(doc.generated_at).toBe(NOW.toISOString());
    expect(doc.dispatcher.runners.map((r) => [r.name, r.state])).toEqual([
      ["nscloud-aaa", "running"],
      ["nscloud-bbb", "pending"],
      ["nscloud-ccc", "launching"],
    ]);
    expect(doc.dispatcher.runners[0]!.job?.id).toBe(42);
    expect(doc.autoscaler.status.instances[0]!.waiting_jobs.map((j) => j.id)).toEqual([43, 44]);
    expect(m.all()).not.toContain(TOKEN);
  });

  it("still prints the autoscaler when the dispatcher is down, says which one failed and how to fix it, and exits 1", async () => {
    const { a } = await daemons();
    const down = await deadUrl();
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    const code = await runCli(["status", "--dispatcher", down, "--autoscaler", a.url], m.io);
    expect(code).toBe(1);
    const out = m.stdout();
    expect(out).toContain(`Dispatcher ${down}: NOT REACHABLE`);
    expect(out).toMatch(/cannot connect to http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect(out).toContain("what to do: is forgejo-nsc-dispatcher running and listening there? Pass --dispatcher <url>");
    expect(out).toContain("instance forgejo");
    expect(out).toContain("no target has every label of gpu");
  });

  it("still prints the dispatcher when the autoscaler is down; --autoscaler none skips it and exits 0", async () => {
    const { d } = await daemons();
    const down = await deadUrl();
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "--dispatcher", d.url, "--autoscaler", down], m.io)).toBe(1);
    expect(m.stdout()).toContain(`Autoscaler ${down}: NOT REACHABLE`);
    expect(m.stdout()).toContain("nscloud-aaa");

    const m2 = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "--dispatcher", d.url, "--autoscaler", "none"], m2.io)).toBe(0);
    expect(m2.stdout()).not.toContain("Autoscaler");
  });

  it("a missing or wrong token is reported with what to do, and the token is never printed", async () => {
    const { d, a } = await daemons();
    const none = memoryIo({ now: () => NOW });
    expect(await runCli(["status", "--dispatcher", d.url, "--autoscaler", a.url], none.io)).toBe(1);
    expect(none.stdout()).toContain(`${d.url}/api/v1/runners answered 401: missing bearer token`);
    expect(none.stdout()).toContain("the dispatcher requires a token: pass --token-file <file> (or set FORGEJO_NSC_TOKEN)");
    expect(none.stdout()).toContain("the autoscaler requires a token");

    const wrong = "wrong-token-0123456789abcdef";
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const file = join(dir.dir, "token");
    writeFileSync(file, `${wrong}\n`);
    const bad = memoryIo({ now: () => NOW });
    expect(await runCli(["status", "--token-file", file, "--dispatcher", d.url, "--autoscaler", a.url, "--json"], bad.io)).toBe(1);
    const doc = JSON.parse(bad.stdout()) as { dispatcher: { ok: boolean; status: number; hint: string } };
    expect(doc.dispatcher).toMatchObject({ ok: false, status: 401 });
    expect(doc.dispatcher.hint).toContain("rejected the token");
    expect(d.requests.at(-1)!.headers.authorization).toBe(`Bearer ${wrong}`);
    expect(bad.all()).not.toContain(wrong);
  });

  it("a URL that is not one of our daemons is named as such", async () => {
    const { d } = await daemons();
    // The dispatcher has no /api/v1/status: pointing --autoscaler at it is a classic mistake.
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "--dispatcher", "none", "--autoscaler", d.url], m.io)).toBe(1);
    expect(m.stdout()).toContain("answered 404: no route for GET /api/v1/status");
    expect(m.stdout()).toContain("is --autoscaler pointing at the autoscaler (and not the other daemon)?");
  });

  it("--state selects the states asked for; unknown states are a usage error naming them", async () => {
    const { d } = await daemons();
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "--autoscaler", "none", "--dispatcher", d.url, "--state", "pending"], m.io)).toBe(0);
    expect(d.requests.at(-1)!.query.get("state")).toBe("pending");
    expect(m.stdout()).toContain("1 runner: 1 pending");
    expect(m.stdout()).not.toContain("nscloud-aaa");

    const all = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "--autoscaler", "none", "--dispatcher", d.url, "--state", "all"], all.io)).toBe(0);
    expect(d.requests.at(-1)!.query.get("state")).toBe("pending,launching,running,finishing,done,failed");

    const bad = memoryIo();
    expect(await runCli(["status", "--state", "running,stuck"], bad.io)).toBe(2);
    expect(bad.stderr()).toContain('--state: unknown state "stuck"');
    expect(bad.stderr()).toContain("Usage:");
  });

  it("status runner <name> prints the details and the transition history", async () => {
    const { d } = await daemons();
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "runner", "nscloud-aaa", "--dispatcher", d.url], m.io)).toBe(0);
    expect(d.requests.at(-1)!.path).toBe("/api/v1/runners/nscloud-aaa");
    const out = m.stdout();
    expect(out).toMatch(/^Runner\s+nscloud-aaa$/m);
    expect(out).toMatch(/^State\s+running for 4m12s$/m);
    expect(out).toMatch(/^Job\s+#42\s+attempt 1\s+handle 9d52c7d8$/m);
    expect(out).toMatch(/^Instance\s+abcdefghijklm$/m);
    expect(out).toMatch(/^Expires\s+2026-08-01T12:25:00.000Z \(in 25m00s\)$/m);
    const hist = out.slice(out.indexOf("History"));
    expect(hist).toMatch(/AT\s+FROM\s+TO\s+REASON/);
    const rows = hist.split("\n").filter((l) => l.startsWith("  2026"));
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/-\s+pending\s+accepted$/);
    expect(rows[2]).toMatch(/launching\s+running\s+instance ready; forgejo-runner took the job$/);

    const json = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "runner", "nscloud-aaa", "--json", "--dispatcher", d.url], json.io)).toBe(0);
    expect((JSON.parse(json.stdout()) as { history: unknown[] }).history).toHaveLength(3);
  });

  it("status runner for an unknown name fails with exit 1 and says where to look", async () => {
    const { d } = await daemons();
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN } });
    expect(await runCli(["status", "runner", "nscloud-zzz", "--dispatcher", d.url], m.io)).toBe(1);
    expect(m.stderr()).toContain(`the dispatcher at ${d.url} has no runner named "nscloud-zzz"`);
    expect(m.stderr()).toContain("--state all");
    const missing = memoryIo();
    expect(await runCli(["status", "runner"], missing.io)).toBe(2);
    expect(missing.stderr()).toContain("name the runner");
    const watch = memoryIo();
    expect(await runCli(["status", "runner", "nscloud-aaa", "--watch", "5s"], watch.io)).toBe(2);
    expect(watch.stderr()).toContain("--watch and --state apply to the runner list");
  });

  it("--watch refreshes until the signal fires", async () => {
    const { d, a } = await daemons();
    const ctl = new AbortController();
    const m = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN }, signal: ctl.signal });
    const run = runCli(["status", "--watch", "100ms", "--dispatcher", d.url, "--autoscaler", a.url], m.io);
    await waitFor(() => d.requests.length >= 3, { what: "three refreshes" });
    ctl.abort();
    expect(await run).toBe(0);
    expect(m.stdout().split("forgejo-nsc status at ").length - 1).toBeGreaterThanOrEqual(3);
    expect(a.requests.length).toBeGreaterThanOrEqual(3);
    // A terminal is redrawn from the top on every refresh.
    const tty = new AbortController();
    const t = memoryIo({ now: () => NOW, env: { FORGEJO_NSC_TOKEN: TOKEN }, signal: tty.signal, tty: true });
    const ttyRun = runCli(["status", "--watch", "100ms", "--dispatcher", d.url, "--autoscaler", "none"], t.io);
    await waitFor(() => t.stdout().split("\x1b[2J\x1b[H").length >= 3, { what: "two redraws" });
    tty.abort();
    expect(await ttyRun).toBe(0);
    expect(
      t.stdout().startsWith("\x1b[2J\x1b[Hforgejo-nsc status at 2026-08-01T12:00:00.000Z (every 100ms; Ctrl-C stops)\n\nDispatcher"),
    ).toBe(true);
    const bad = memoryIo();
    expect(await runCli(["status", "--watch", "soon"], bad.io)).toBe(2);
    expect(bad.stderr()).toContain('--watch: "soon" is not a duration');
  });

  it("rejects --token with --token-file, and unknown flags, with exit 2 naming the flag", async () => {
    const both = memoryIo();
    expect(await runCli(["status", "--token", "abc", "--token-file", "/nonexistent"], both.io)).toBe(2);
    expect(both.stderr()).toContain("give either --token or --token-file, not both");
    const unknown = memoryIo();
    expect(await runCli(["status", "--tokn=some-secret-value"], unknown.io)).toBe(2);
    expect(unknown.stderr()).toContain("unknown flag --tokn");
    expect(unknown.stderr()).not.toContain("some-secret-value");
    const missing = memoryIo();
    expect(await runCli(["status", "--dispatcher"], missing.io)).toBe(2);
    expect(missing.stderr()).toContain("flag --dispatcher needs a value");
    const unreadable = memoryIo();
    expect(await runCli(["status", "--token-file", "/nonexistent/token"], unreadable.io)).toBe(1);
    expect(unreadable.stderr()).toContain("cannot read the API token from /nonexistent/token (ENOENT)");
  });
});
