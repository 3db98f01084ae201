// Container HEALTHCHECK: GET /healthz on the daemon this container runs. Plain node (slim images
// have no curl). The address comes from FORGEJO_NSC_HEALTHCHECK_URL, else from the `listen:` line
// of the config file named on PID 1's command line, else the daemon's default port.
import { readFileSync } from "node:fs";

const DEFAULT_LISTEN = { dispatcher: "127.0.0.1:8080", autoscaler: "127.0.0.1:8081" };

function mainArgs() {
  try {
    return readFileSync("/proc/1/cmdline", "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

// The variables the daemons read their config file from when --config is absent.
const CONFIG_ENV = { dispatcher: "FORGEJO_NSC_CONFIG", autoscaler: "FORGEJO_NSC_AUTOSCALER_CONFIG" };

function configPath(argv, daemon) {
  for (let i = 0; i < argv.length; i++) {
    if ((argv[i] === "--config" || argv[i] === "-c") && argv[i + 1]) return argv[i + 1];
    if (argv[i].startsWith("--config=")) return argv[i].slice("--config=".length);
  }
  return process.env[CONFIG_ENV[daemon]];
}

function listenFromConfig(file) {
  try {
    const m = /^listen:[ \t]*["']?([^"'\s#]+)["']?/m.exec(readFileSync(file, "utf8"));
    // A ${VAR} reference is expanded by the daemon, not here: fall back to the default.
    return m && !m[1].includes("${") ? m[1] : undefined;
  } catch {
    return undefined;
  }
}

function healthUrl(argv, env) {
  if (env.FORGEJO_NSC_HEALTHCHECK_URL) return env.FORGEJO_NSC_HEALTHCHECK_URL;
  const daemon = argv.some((a) => a === "autoscaler" || /autoscaler(\.js)?$/.test(a)) ? "autoscaler" : "dispatcher";
  const file = configPath(argv, daemon);
  const listen = (file && listenFromConfig(file)) || DEFAULT_LISTEN[daemon];
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d+)$/.exec(listen);
  let host = m && m[1] ? m[1] : "";
  if (host === "" || host === "0.0.0.0") host = "127.0.0.1";
  if (host === "[::]") host = "[::1]";
  return `http://${host}:${m ? m[2] : "8080"}/healthz`;
}

const url = healthUrl(mainArgs(), process.env);
try {
  const res = await globalThis.fetch(url, { signal: globalThis.AbortSignal.timeout(4000) });
  if (!res.ok) {
    console.error(`${url} answered ${res.status}`);
    process.exit(1);
  }
} catch (err) {
  console.error(`${url} unreachable: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
