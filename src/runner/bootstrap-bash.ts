import { pathToFileURL } from "node:url";
import { TOKEN_ENV } from "./bootstrap-sh.js";
import type { PublicCredentials } from "./bootstrap-sh.js";
import { resolveLabels } from "./labels.js";
import type { RunnerSource } from "./runner-source.js";
import { exportLines, heredocToFile } from "./quote-bash.js";
import { shQuote } from "./shell-quote.js";

export { publicCredentials } from "./bootstrap-sh.js";

export const SECRET_ENV = TOKEN_ENV;

export interface BashBootstrapOptions {
  runnerName: string;
  /** Labels as requested; a label without ":" gets ":<executor>". */
  labels: readonly string[];
  executor: string;
  mode: "one-job" | "daemon";
  workdir: string;
  credentials: PublicCredentials;
  jobHandle?: string | undefined;
  /** Where forgejo-runner comes from when the image has none on PATH (src/runner/runner-source.ts). */
  source: RunnerSource;
  /** A Namespace cache volume mount: the runner's action cache lives there. */
  cachePath?: string | undefined;
}

/** runner.yaml as JSON-in-YAML (JSON is valid YAML), so hostile label text stays data. */
export function runnerYaml(opts: { labels: readonly string[]; workdir: string; cachePath?: string | undefined }): string {
  const cache = opts.cachePath ? { enabled: true, dir: `${opts.cachePath.replace(/\/+$/, "")}/actcache` } : { enabled: false };
  const config = {
    log: { level: "info" },
    runner: {
      file: ".runner",
      capacity: 1,
      fetch_timeout: "5s",
      fetch_interval: "2s",
      report_interval: "1s",
      labels: opts.labels,
    },
    cache,
    host: { workdir_parent: `${opts.workdir.replace(/\/+$/, "")}/work` },
  };
  // YAML 1.1 readers treat NEL, LS and PS as line breaks even inside quotes: escape them.
  return `${JSON.stringify(config, null, 2).replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}\n`;
}

/**
 * The macOS bootstrap (bash): find or download forgejo-runner, write runner.yaml, register
 * (token mode) or write the runner token file (ephemeral mode), run one job (or the daemon) and
 * exit with its status. Pure. Every interpolated value is single-quoted; the secret comes only
 * from $FORGEJO_RUNNER_TOKEN and is unset before the job runs, so job steps cannot read it.
 */
export function buildBashBootstrap(o: BashBootstrapOptions): string {
  if (!o.workdir.startsWith("/")) throw new Error(`namespace.workdir must be an absolute path, got ${JSON.stringify(o.workdir)}`);
  if (o.cachePath !== undefined && !o.cachePath.startsWith("/"))
    throw new Error(`namespace.macos_cache_path must be an absolute path, got ${JSON.stringify(o.cachePath)}`);
  const labels = resolveLabels(o.labels, o.executor);
  const q = shQuote;
  const lines: string[] = [
    "#!/bin/bash",
    "# forgejo-nsc macOS runner bootstrap",
    "set -euo pipefail",
    "umask 077",
    `workdir=${q(o.workdir)}`,
    'mkdir -p "$workdir"',
    'cd "$workdir"',
    `if [ -z "\${${SECRET_ENV}:-}" ]; then echo "forgejo-nsc: ${SECRET_ENV} is not set; the dispatcher passes it in the instance environment" >&2; exit 2; fi`,
    'log() { printf "forgejo-nsc: %s\\n" "$*" >&2; }',
    ...acquireRunnerLines(o.source, o.cachePath),
    'log "using $runner_bin"',
    'mkdir -p "$workdir/work"',
  ];
  if (o.cachePath) lines.push(`mkdir -p ${q(`${o.cachePath.replace(/\/+$/, "")}/actcache`)} || true`);
  lines.push(`printf '%s' ${q(runnerYaml({ labels, workdir: o.workdir, cachePath: o.cachePath }))} > runner.yaml`);

  const verb = o.mode === "daemon" ? "daemon" : "one-job";
  if (o.credentials.mode === "token") {
    lines.push(
      `"$runner_bin" register --no-interactive --instance ${q(o.credentials.instanceUrl)} --token "$${SECRET_ENV}" --name ${q(o.runnerName)} --labels ${q(labels.join(","))} --config runner.yaml`,
      `unset ${SECRET_ENV}`,
      "set +e",
      `"$runner_bin" ${verb} --config runner.yaml`,
    );
  } else {
    const labelArgs = labels.map((l) => `--label ${q(l)}`).join(" ");
    // --wait with --handle: without it one fetch that brings no task ends one-job with exit 2 (runner poll/single.go).
    const handle = o.mode === "one-job" ? `${o.jobHandle ? ` --handle ${q(o.jobHandle)}` : ""} --wait` : "";
    const tokenPath = `${o.workdir.replace(/(.)\/+$/, "$1")}/runner-token`;
    lines.push(
      `token_file=${q(tokenPath)}`,
      `printf '%s' "$${SECRET_ENV}" > "$token_file"`,
      'chmod 0600 "$token_file"',
      `unset ${SECRET_ENV}`,
      "set +e",
      `"$runner_bin" ${verb} --config runner.yaml --url ${q(o.credentials.instanceUrl)} --uuid ${q(o.credentials.uuid)} --token-url ${q(pathToFileURL(tokenPath).href)} ${labelArgs}${handle}`,
    );
  }
  lines.push("status=$?", 'log "forgejo-runner exited with status $status"', 'exit "$status"');
  return `${lines.join("\n")}\n`;
}

/**
 * What `nsc ssh <id> -T -- /bin/bash` reads on stdin in the macOS fallback: export the
 * environment (secrets travel here, over the SSH channel, never on a command line), store the
 * bootstrap in a private temp dir and start it under nohup, so the SSH session — and our local nsc
 * process — end at once while the job runs. An `nsc create` instance does not end with the script,
 * so afterwards, on the Mac only, it tries `nsc destroy --force <own id>` (if the image has nsc and
 * its workload identity may do that) and then asks the machine to shut down (sudo -n); both are best
 * effort, and the dispatcher's supervision destroys the instance in any case.
 */
export function buildDetachedBashLauncher(opts: {
  script: string;
  env: Record<string, string>;
  selfDestroy?: { instanceId: string; region?: string | undefined };
}): string {
  const destroy = opts.selfDestroy
    ? `  if command -v nsc >/dev/null 2>&1; then nsc ${opts.selfDestroy.region ? `--region ${shQuote(opts.selfDestroy.region)} ` : ""}destroy --force ${shQuote(opts.selfDestroy.instanceId)} >/dev/null 2>&1 || true; fi`
    : undefined;
  const supervise = [
    "#!/bin/bash",
    'dir="$1"',
    // A login shell, as the Compute API path runs it (Homebrew on PATH), keeping the PATH it came with.
    'inherited_path="$PATH"',
    `/bin/bash -l -c 'export PATH="$PATH:$1"; exec /bin/bash "$2"' forgejo-nsc "$inherited_path" "$dir/bootstrap.sh"`,
    "status=$?",
    'printf "%s\\n" "$status" > "$dir/exit-status"',
    'echo "forgejo-nsc: bootstrap exited with status $status"',
    // Only ever on the macOS instance itself, never on a machine that runs this for a test.
    'if [ "$(uname -s)" = Darwin ]; then',
    ...(destroy ? [destroy] : []),
    "  sudo -n /sbin/shutdown -h now >/dev/null 2>&1 || true",
    "fi",
    'exit "$status"',
  ].join("\n");
  return [
    "set -eu",
    "umask 077",
    ...exportLines(opts.env),
    'dir="$(mktemp -d "${TMPDIR:-/tmp}/forgejo-nsc.XXXXXX")"',
    heredocToFile('"$dir/bootstrap.sh"', opts.script),
    heredocToFile('"$dir/supervise.sh"', supervise),
    'nohup /bin/bash "$dir/supervise.sh" "$dir" > "$dir/log" 2>&1 < /dev/null &',
    'echo "forgejo-nsc: runner started in the background (pid $!, log $dir/log)"',
    "",
  ].join("\n");
}

/** Bash that sets $runner_bin: the image's forgejo-runner, a cached one, or one fetched from `source`. */
function acquireRunnerLines(source: RunnerSource, cachePath: string | undefined): string[] {
  const q = shQuote;
  const key =
    source.kind === "download" ? `sha256-${source.sha256.slice(0, 16)}` : source.kind === "source" ? `v${source.version}` : undefined;
  const cached = cachePath && key ? `${cachePath.replace(/\/+$/, "")}/forgejo-runner/${key}/forgejo-runner` : undefined;
  const lines = [
    'runner_bin="$(command -v forgejo-runner 2>/dev/null || true)"',
    'if [ -z "$runner_bin" ] && [ -x "$workdir/bin/forgejo-runner" ]; then runner_bin="$workdir/bin/forgejo-runner"; fi',
  ];
  if (cached)
    lines.push(
      `cached=${q(cached)}`,
      'if [ -z "$runner_bin" ] && [ -x "$cached" ]; then runner_bin="$cached"; log "using forgejo-runner from the cache volume"; fi',
    );
  lines.push('if [ -z "$runner_bin" ]; then', '  mkdir -p "$workdir/bin"');
  if (source.kind === "none") {
    lines.push(`  log ${q(source.problem)}`, "  exit 3");
  } else if (source.kind === "download") {
    lines.push(
      `  url=${q(source.url)}`,
      `  want=${q(source.sha256)}`,
      '  log "forgejo-runner is not on PATH; downloading $url"',
      '  if ! curl -fsSL --retry 5 --retry-delay 2 -o "$workdir/bin/forgejo-runner.part" "$url"; then',
      '    log "download of $url failed: check runner.binaries.macos_arm64.url (upstream publishes no macOS build)"',
      "    exit 3",
      "  fi",
      '  got="$( (shasum -a 256 "$workdir/bin/forgejo-runner.part" 2>/dev/null || sha256sum "$workdir/bin/forgejo-runner.part") | cut -d" " -f1)"',
      '  if [ "$got" != "$want" ]; then',
      '    rm -f "$workdir/bin/forgejo-runner.part"',
      '    log "checksum mismatch for $url: the file has SHA-256 $got, runner.binaries.macos_arm64.sha256 says $want"',
      "    exit 3",
      "  fi",
      '  chmod 0755 "$workdir/bin/forgejo-runner.part"',
      '  mv "$workdir/bin/forgejo-runner.part" "$workdir/bin/forgejo-runner"',
    );
  } else {
    // Go's module and build caches live on the cache volume when there is one: the next build is quick.
    const goPath = cachePath ? q(`${cachePath.replace(/\/+$/, "")}/go`) : '"$workdir/go"';
    lines.push(
      `  archive=${q(source.archiveUrl)}`,
      `  log ${q(`forgejo-runner is not on PATH and upstream publishes no macOS build: building ${source.version} from its source archive`)}`,
      '  if ! command -v go >/dev/null 2>&1 && command -v brew >/dev/null 2>&1; then log "installing Go with Homebrew"; brew install go >&2 || true; fi',
      "  if ! command -v go >/dev/null 2>&1; then",
      '    log "cannot build forgejo-runner: no go on this image; install Go in the image, or set runner.binaries.macos_arm64 to a prebuilt binary"',
      "    exit 3",
      "  fi",
      '  src="$workdir/runner-src"',
      '  rm -rf "$src" && mkdir -p "$src"',
      '  if ! curl -fsSL --retry 5 --retry-delay 2 -o "$src.tar.gz" "$archive"; then log "download of $archive failed: check runner.version"; exit 3; fi',
      '  tar -xzf "$src.tar.gz" -C "$src" --strip-components 1',
      `  export GOPATH=${goPath} GOCACHE=${goPath}/build-cache`,
      `  if ! (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags ${q(`-s -w -X ${source.module}/internal/pkg/ver.version=v${source.version}`)} -o "$workdir/bin/forgejo-runner" .) >&2; then`,
      `    log ${q(`building forgejo-runner ${source.version} failed; set runner.binaries.macos_arm64 to a prebuilt binary`)}`,
      "    exit 3",
      "  fi",
      '  rm -rf "$src" "$src.tar.gz"',
    );
  }
  lines.push('  runner_bin="$workdir/bin/forgejo-runner"');
  if (cached) {
    lines.push(
      '  if mkdir -p "$(dirname "$cached")" && cp "$runner_bin" "$cached.part" && mv "$cached.part" "$cached"; then log "kept forgejo-runner on the cache volume"; else log "could not keep forgejo-runner on the cache volume"; fi',
    );
  }
  lines.push("fi");
  return lines;
}
