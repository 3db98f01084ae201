/**
 * Which forgejo-runner release the instances run, and what each release can do. Facts and their
 * upstream sources are in docs/upstream-contracts.md ("forgejo-runner").
 */

/** The release the default Linux image's tag names and macOS builds from source (runner.version). */
export const DEFAULT_RUNNER_VERSION = "12.13.2";

/**
 * `one-job --url --uuid --token-url --label --handle` (ephemeral runners pinned to one job,
 * Forgejo >= 15): absent from 12.6.4 and earlier, present in 12.8.0's `one-job --help`.
 */
export const MIN_EPHEMERAL_RUNNER_VERSION = "12.8.0";

/** The upstream image; upstream also mirrors it at data.forgejo.org/forgejo/runner. */
export const RUNNER_IMAGE_REPOSITORY = "code.forgejo.org/forgejo/runner";

export function defaultRunnerImage(version: string): string {
  return `${RUNNER_IMAGE_REPOSITORY}:${version}`;
}

type Semver = [number, number, number];

/** "12.13.2", "v12.13.2" → [12, 13, 2]; anything else (a major-only tag, "latest") → undefined. */
export function parseRunnerVersion(v: string): Semver | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function older(a: Semver, b: Semver): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] as number) < (b[i] as number);
  return false;
}

/**
 * The runner version an image says it has: the tag of an upstream forgejo/runner image
 * (code.forgejo.org or data.forgejo.org), when it is a full version. Other images say nothing.
 */
export function imageRunnerVersion(image: string): string | undefined {
  const m = /^(?:code|data)\.forgejo\.org\/forgejo\/runner:(v?\d+\.\d+\.\d+)$/.exec(image.trim());
  return m?.[1];
}

/**
 * Why a runner version cannot run ephemeral runners, or undefined when it can. A version that is
 * not a full x.y.z cannot be judged and is let through (the operator pinned something of their own).
 */
export function ephemeralRunnerProblem(version: string, where: string): string | undefined {
  const v = parseRunnerVersion(version);
  const min = parseRunnerVersion(MIN_EPHEMERAL_RUNNER_VERSION) as Semver;
  if (!v || !older(v, min)) return undefined;
  return (
    `${where} is forgejo-runner ${version}, too old for ephemeral runners: one-job --url/--uuid/--token-url/--handle ` +
    `need ${MIN_EPHEMERAL_RUNNER_VERSION} or newer. Use ${DEFAULT_RUNNER_VERSION} (the default), or set forgejo.registration: token`
  );
}
