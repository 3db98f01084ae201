import type { Platform } from "../store/types.js";
import { parseRunnerVersion } from "./runner-version.js";

/**
 * Where macOS and Windows instances get forgejo-runner. Upstream builds release binaries for
 * linux/amd64 and linux/arm64 only (runner `.forgejo/workflows/build-release.yml`:
 * `platforms: linux/amd64,linux/arm64`), so there is no darwin or windows asset to download:
 * - an operator-hosted binary (URL + SHA-256), for example in the forge's generic package registry;
 * - on macOS, by default, a build of runner.version from its source archive with Go on the Mac.
 */
export type RunnerSource =
  | { kind: "download"; url: string; sha256: string }
  | { kind: "source"; version: string; archiveUrl: string; module: string }
  | { kind: "none"; problem: string };

export interface BinarySource {
  url: string;
  sha256: string;
}

export interface RunnerSourceConfig {
  version: string;
  binaries: { macos_arm64?: BinarySource | undefined; windows_amd64?: BinarySource | undefined };
  macos_build_from_source: boolean;
}

/** The source archive Forgejo serves for a tag (`/{owner}/{repo}/archive/{ref}.tar.gz`). */
export function runnerSourceArchiveUrl(version: string): string {
  return `https://code.forgejo.org/forgejo/runner/archive/v${version.replace(/^v/, "")}.tar.gz`;
}

export function runnerSourceFor(platform: Exclude<Platform, "linux">, r: RunnerSourceConfig): RunnerSource {
  const key = platform === "macos" ? "macos_arm64" : "windows_amd64";
  const bin = r.binaries[key];
  if (bin) return { kind: "download", url: bin.url, sha256: bin.sha256.toLowerCase() };
  const upstream = "upstream publishes forgejo-runner for Linux only";
  if (platform === "windows") {
    return {
      kind: "none",
      problem: `no forgejo-runner for Windows: ${upstream}; build it and set runner.binaries.windows_amd64 (url and sha256), see docs/platforms.md`,
    };
  }
  const v = parseRunnerVersion(r.version);
  if (!r.macos_build_from_source) {
    return {
      kind: "none",
      problem: `no forgejo-runner for macOS: ${upstream}; set runner.binaries.macos_arm64 (url and sha256) or runner.macos_build_from_source: true`,
    };
  }
  if (!v) {
    return {
      kind: "none",
      problem: `runner.version ${JSON.stringify(r.version)} is not a release such as 12.13.2, so macOS cannot build it from source; set runner.binaries.macos_arm64`,
    };
  }
  const version = `${v[0]}.${v[1]}.${v[2]}`;
  return { kind: "source", version, archiveUrl: runnerSourceArchiveUrl(version), module: `code.forgejo.org/forgejo/runner/v${v[0]}` };
}

/** Why a dispatch for this platform cannot start a runner, or undefined. */
export function runnerSourceProblem(platform: Platform, r: RunnerSourceConfig): string | undefined {
  if (platform === "linux") return undefined;
  const s = runnerSourceFor(platform, r);
  return s.kind === "none" ? s.problem : undefined;
}
