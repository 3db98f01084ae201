import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** What scripts/upstream/build.ts found for one program. */
export type ManifestEntry = {
  name: string;
  version: string;
  module: string;
  why: string;
  /** Seconds the build (or the refused download) took; 0 when taken from the cache. */
  seconds: number;
} & ({ status: "built" | "cached"; bin: string; src?: string } | { status: "unavailable"; reason: string });

export function upstreamCacheDir(): string {
  return process.env.FORGEJO_NSC_UPSTREAM_CACHE ?? join(process.env.HOME ?? homedir(), ".cache", "forgejo-nsc", "upstream");
}

/** The manifest's entries; empty when the build script has not run. */
export function readManifest(): ManifestEntry[] {
  const path = join(upstreamCacheDir(), "manifest.json");
  if (!existsSync(path)) return [];
  return (JSON.parse(readFileSync(path, "utf8")) as { programs: ManifestEntry[] }).programs;
}

/** A built program's binary (and source tree), or an error saying how to get it. */
export function upstreamProgram(name: string, version: string): { bin: string; src?: string | undefined } {
  const e = readManifest().find((x) => x.name === name && x.version === version);
  if (!e)
    throw new Error(
      `${name} ${version} has not been built: run \`npx tsx scripts/upstream/build.ts ${name}\` (npm run test:upstream does)`,
    );
  if (e.status === "unavailable") throw new Error(`${name} ${version} is unavailable here: ${e.reason}`);
  return { bin: e.bin, src: e.src };
}
