/**
 * Builds the real upstream programs the end-to-end suites run (scripts/upstream/versions.json) from
 * their Go modules with the ordinary Go client, into a cache keyed by name and version, and writes
 * <cache>/manifest.json saying, per program, where its binary is or why it could not be had.
 *
 *   npx tsx scripts/upstream/build.ts            # all programs
 *   npx tsx scripts/upstream/build.ts gitea      # only those whose name matches
 *
 * Cache: $FORGEJO_NSC_UPSTREAM_CACHE, default ~/.cache/forgejo-nsc/upstream. A module whose go.mod
 * has `replace` directives cannot be `go install`ed by version, so each one is downloaded with
 * `go mod download` and built inside a writable copy. A module the proxy refuses is recorded as
 * "unavailable" with the proxy's answer (never replaced by anything else); a build that fails after
 * the download fails the script.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { upstreamCacheDir } from "./manifest.js";
import type { ManifestEntry } from "./manifest.js";

interface Program {
  name: string;
  version: string;
  module: string;
  package: string;
  tags: string;
  ldflags: string;
  keepSource: boolean;
  why: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const { programs } = JSON.parse(readFileSync(join(here, "versions.json"), "utf8")) as { programs: Program[] };
const cache = upstreamCacheDir();
const only = process.argv.slice(2);
const goEnv = { ...process.env, GOFLAGS: "-buildvcs=false", CGO_ENABLED: "1", GOTOOLCHAIN: "local", HOME: process.env.HOME ?? homedir() };
/** The go command: $GO, else `go` on PATH, else the usual install location. */
const GO =
  process.env.GO ??
  (spawnSync("go", ["version"], { env: goEnv }).status === 0 ? "go" : existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go");

function build(p: Program): ManifestEntry {
  const key = `${p.name}-${p.version}`;
  const dir = join(cache, key);
  const bin = join(dir, p.name);
  const src = join(dir, "src");
  const base = { name: p.name, version: p.version, module: p.module, why: p.why };
  if (existsSync(join(dir, "built.json")) && existsSync(bin)) {
    return { ...base, status: "cached", bin, ...(p.keepSource ? { src } : {}), seconds: 0 };
  }
  const started = Date.now();
  const dl = spawnSync(GO, ["mod", "download", "-json", `${p.module}@v${p.version}`], {
    env: goEnv,
    encoding: "utf8",
    maxBuffer: 16 << 20,
  });
  let info: { Dir?: string; Error?: string } = {};
  try {
    info = JSON.parse(dl.stdout) as typeof info;
  } catch {
    info = { Error: (dl.stderr || dl.stdout || `go mod download exited ${dl.status}`).trim() };
  }
  if (dl.error) throw new Error(`cannot run ${GO} (${dl.error.message}): install Go 1.24 or newer, or set GO to its go binary`);
  if (!info.Dir) {
    return {
      ...base,
      status: "unavailable",
      reason: `go mod download ${p.module}@v${p.version}: ${info.Error ?? dl.stderr.trim()}`,
      seconds: (Date.now() - started) / 1000,
    };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // The module cache is read-only; building needs a writable copy (and Gitea/Forgejo read their
  // options/ and templates/ from it at run time when built without bindata).
  cpSync(info.Dir, src, { recursive: true });
  execFileSync("chmod", ["-R", "u+w", src]);
  const ldflags = p.ldflags.replaceAll("{version}", p.version).replaceAll("{tags}", p.tags);
  process.stderr.write(`building ${key} from ${p.module}@v${p.version} (a cold build takes several minutes on 2 cores)\n`);
  const r = spawnSync(GO, ["build", "-tags", p.tags, "-ldflags", ldflags, "-o", `${bin}.tmp`, p.package], {
    cwd: src,
    env: goEnv,
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (r.status !== 0) throw new Error(`go build of ${key} failed (exit ${r.status ?? r.signal}); see the output above`);
  chmodSync(`${bin}.tmp`, 0o755);
  renameSync(`${bin}.tmp`, bin);
  if (!p.keepSource) rmSync(src, { recursive: true, force: true });
  const seconds = (Date.now() - started) / 1000;
  writeFileSync(
    join(dir, "built.json"),
    JSON.stringify({ ...base, seconds, go: execFileSync(GO, ["version"], { encoding: "utf8" }).trim() }, null, 2),
  );
  return { ...base, status: "built", bin, ...(p.keepSource ? { src } : {}), seconds };
}

mkdirSync(cache, { recursive: true });
const manifestPath = join(cache, "manifest.json");
const previous: ManifestEntry[] = existsSync(manifestPath)
  ? (JSON.parse(readFileSync(manifestPath, "utf8")) as { programs: ManifestEntry[] }).programs
  : [];
const entries = new Map(previous.map((e) => [`${e.name}-${e.version}`, e]));
let failed = false;
for (const p of programs) {
  if (only.length > 0 && !only.some((o) => p.name === o || `${p.name}-${p.version}` === o)) continue;
  try {
    const e = build(p);
    entries.set(`${p.name}-${p.version}`, e);
    const detail = e.status === "unavailable" ? e.reason : `${e.bin} (${e.seconds.toFixed(0)} s)`;
    process.stdout.write(`${e.status.padEnd(11)} ${p.name} ${p.version}: ${detail}\n`);
    // After each program, so a suite can use what is built while the rest still builds.
    writeFileSync(manifestPath, JSON.stringify({ programs: [...entries.values()] }, null, 2));
  } catch (err) {
    failed = true;
    process.stdout.write(`failed      ${p.name} ${p.version}: ${(err as Error).message}\n`);
  }
}
writeFileSync(manifestPath, JSON.stringify({ programs: [...entries.values()] }, null, 2));
process.stdout.write(`manifest: ${manifestPath}\n`);
process.exitCode = failed ? 1 : 0;
