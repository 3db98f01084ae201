import { pathToFileURL } from "node:url";
import type { RunnerCredentials } from "./credentials.js";
import { assertEnvKey } from "./env-key.js";
import { resolveLabels } from "./labels.js";
import { shJoin, shQuote } from "./shell-quote.js";

/** The environment variable carrying the registration token or runner token into the instance. */
export const TOKEN_ENV = "FORGEJO_RUNNER_TOKEN";

/** Runner credentials without their secret: the script reads the secret from $FORGEJO_RUNNER_TOKEN. */
export type PublicCredentials = { mode: "token"; instanceUrl: string } | { mode: "ephemeral"; instanceUrl: string; uuid: string };

export function publicCredentials(c: RunnerCredentials): PublicCredentials {
  return c.mode === "token"
    ? { mode: "token", instanceUrl: c.instanceUrl }
    : { mode: "ephemeral", instanceUrl: c.instanceUrl, uuid: c.uuid };
}

export interface ShBootstrapOptions {
  runnerName: string;
  /** Labels as requested; those without ":" get `:<executor>`. */
  labels: readonly string[];
  /** runner.executor: host, docker://<image>, lxc://<image>. */
  executor: string;
  mode: "one-job" | "daemon";
  /** Absolute directory inside the instance for runner.yaml, .runner and the token file. */
  workdir: string;
  credentials: PublicCredentials;
  /** Job handle to pin (Forgejo >= 15, ephemeral one-job only). */
  jobHandle?: string | undefined;
  /** Variables exported by the script (values nsc's -e would mangle). Never secrets. */
  scriptEnv: Record<string, string>;
  /** Cache volume mount point: the runner's action cache lives there when set. */
  cachePath?: string | undefined;
  /** runner.fetch_interval (default 2s). */
  fetchInterval?: string | undefined;
  /** runner.report_interval (default 1s). */
  reportInterval?: string | undefined;
  /**
   * Install Node.js when the image lacks it and a label runs on the host executor: the upstream
   * image is Alpine with git and bash only, and every JavaScript action (checkout, setup-*) needs node.
   */
  installNode?: boolean | undefined;
}

/**
 * Installs Node.js with the image's package manager when `node` is missing (apk on the upstream
 * Alpine image, apt-get on Debian/Ubuntu images). With a cache volume, apk keeps the downloaded
 * packages there. A failed install warns and goes on: steps without JavaScript actions still work.
 */
function installNodeLines(cachePath: string | undefined): string[] {
  const apkCache = cachePath ? ` --cache-dir ${shQuote(`${cachePath.replace(/\/+$/, "")}/apk`)}` : " --no-cache";
  return [
    "if ! command -v node >/dev/null 2>&1; then",
    "  echo 'forgejo-nsc: node is not in the image; installing nodejs for JavaScript actions' >&2",
    "  if command -v apk >/dev/null 2>&1; then",
    ...(cachePath ? [`    mkdir -p ${shQuote(`${cachePath.replace(/\/+$/, "")}/apk`)}`] : []),
    `    apk add${apkCache} nodejs npm >&2 || echo 'forgejo-nsc: apk add nodejs failed; JavaScript actions will fail' >&2`,
    "  elif command -v apt-get >/dev/null 2>&1; then",
    "    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs) >&2 || echo 'forgejo-nsc: apt-get install nodejs failed; JavaScript actions will fail' >&2",
    "  else",
    "    echo 'forgejo-nsc: no apk or apt-get to install node with; JavaScript actions will fail (use an image with node)' >&2",
    "  fi",
    "fi",
  ];
}

/** A YAML double-quoted scalar (JSON strings are valid YAML; line separators escaped too). */
function yamlString(s: string): string {
  return JSON.stringify(s).replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function runnerYaml(o: ShBootstrapOptions, labels: readonly string[]): string {
  const lines = [
    "# written by forgejo-nsc for one ephemeral runner",
    "log:",
    "  level: info",
    "runner:",
    "  file: .runner",
    "  capacity: 1",
    `  fetch_interval: ${yamlString(o.fetchInterval ?? "2s")}`,
    `  report_interval: ${yamlString(o.reportInterval ?? "1s")}`,
    "  labels:",
    ...labels.map((l) => `    - ${yamlString(l)}`),
    "cache:",
  ];
  if (o.cachePath) {
    // The instance is thrown away after one job; only a cache on the persistent volume is worth keeping.
    lines.push("  enabled: true", `  dir: ${yamlString(`${o.cachePath.replace(/\/+$/, "")}/actcache`)}`);
  } else {
    lines.push("  enabled: false");
  }
  lines.push("host:", `  workdir_parent: ${yamlString(`${o.workdir.replace(/\/+$/, "")}/work`)}`);
  return lines.join("\n") + "\n";
}

/**
 * The POSIX sh script `nsc run … -- /bin/sh -c <script>` runs in the container: writes runner.yaml,
 * then registers with the registration token and runs one job (Forgejo < 15), or writes the runner
 * token to a 0600 file and runs `one-job --url --uuid --token-url` (Forgejo >= 15). The secret only
 * ever comes from $FORGEJO_RUNNER_TOKEN; everything interpolated is single-quoted.
 */
export function buildShBootstrap(o: ShBootstrapOptions): string {
  if (!o.workdir.startsWith("/")) throw new Error(`namespace.workdir must be an absolute path, got ${JSON.stringify(o.workdir)}`);
  if (o.cachePath !== undefined && !o.cachePath.startsWith("/"))
    throw new Error(`namespace.linux_cache_path must be an absolute path, got ${JSON.stringify(o.cachePath)}`);
  const labels = resolveLabels(o.labels, o.executor);
  const workdir = o.workdir.replace(/(.)\/+$/, "$1");
  const q = shQuote;
  const s: string[] = ["set -eu"];
  for (const key of Object.keys(o.scriptEnv).sort()) {
    assertEnvKey(key);
    if (key === TOKEN_ENV) throw new Error(`${TOKEN_ENV} must reach the instance in the container environment, never the script text`);
    s.push(`export ${key}=${q(o.scriptEnv[key] as string)}`);
  }
  s.push(
    `: "\${${TOKEN_ENV}:?${TOKEN_ENV} is not set: the dispatcher passes it in the container environment}"`,
    `mkdir -p ${q(workdir)}`,
    `cd ${q(workdir)}`,
  );
  if (o.cachePath) s.push(`mkdir -p ${q(o.cachePath)}`);
  s.push(`printf '%s' ${q(runnerYaml({ ...o, workdir }, labels))} > runner.yaml`);
  if ((o.installNode ?? true) && labels.some((l) => l.slice(l.indexOf(":") + 1) === "host")) s.push(...installNodeLines(o.cachePath));

  const sub = o.mode === "daemon" ? "daemon" : "one-job";
  if (o.credentials.mode === "token") {
    s.push(
      `echo ${q(`forgejo-nsc: registering runner ${o.runnerName} with ${o.credentials.instanceUrl}`)} >&2`,
      `forgejo-runner register --no-interactive --instance ${q(o.credentials.instanceUrl)} --token "$${TOKEN_ENV}" --name ${q(o.runnerName)} --labels ${q(labels.join(","))} --config runner.yaml`,
      // Jobs on the host executor inherit the runner's environment; the token is not theirs.
      `unset ${TOKEN_ENV}`,
      `echo ${q(`forgejo-nsc: starting forgejo-runner ${sub}`)} >&2`,
      `exec forgejo-runner ${sub} --config runner.yaml`,
    );
  } else {
    const tokenFile = `${workdir === "/" ? "" : workdir}/.runner-token`;
    const cmd = [
      "forgejo-runner",
      sub,
      "--config",
      "runner.yaml",
      "--url",
      o.credentials.instanceUrl,
      "--uuid",
      o.credentials.uuid,
      "--token-url",
      pathToFileURL(tokenFile).href,
    ];
    for (const l of labels) cmd.push("--label", l);
    if (sub === "one-job") {
      // Pinned to a job attempt when there is a handle. --wait either way: without it one fetch that
      // returns no task, fails or times out makes one-job exit 2 (runner poll/single.go), and a
      // pinned job would stay queued with its runner gone.
      if (o.jobHandle) cmd.push("--handle", o.jobHandle);
      cmd.push("--wait");
      // The token goes through a FIFO: one-job reads it once at start and nothing stays on disk for
      // job steps (root on the host executor) to read; the writer removes the FIFO after.
      s.push(
        `rm -f ${q(tokenFile)}`,
        `mkfifo -m 600 ${q(tokenFile)}`,
        `(printf '%s' "$${TOKEN_ENV}" > ${q(tokenFile)}; rm -f ${q(tokenFile)}) &`,
      );
    } else {
      // A daemon lives for many jobs and may read its token again: a private file.
      s.push(`(umask 077 && printf '%s' "$${TOKEN_ENV}" > ${q(tokenFile)})`, `chmod 600 ${q(tokenFile)}`);
    }
    s.push(`unset ${TOKEN_ENV}`, `echo ${q(`forgejo-nsc: starting forgejo-runner ${sub} as ${o.runnerName}`)} >&2`, `exec ${shJoin(cmd)}`);
  }
  return s.join("\n") + "\n";
}
