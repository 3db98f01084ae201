import { cacheTag } from "../runner/labels.js";

/** A cache volume: Namespace's persistent tag and where it is mounted in the runner. */
export interface CacheVolume {
  tag: string;
  path: string;
}

const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The runner's cache volume from namespace.<platform>_cache_tag and _cache_path, or undefined when
 * no tag is configured. `{labels}` in the tag becomes the slug of the runner's labels; a tag that
 * expands to something Namespace would refuse throws (the launch fails as invalid).
 */
export function cacheVolume(
  setting: "linux_cache_tag" | "macos_cache_tag",
  template: string | undefined,
  path: string,
  labels: readonly string[],
): CacheVolume | undefined {
  if (!template) return undefined;
  const tag = cacheTag(template, labels);
  if (!TAG.test(tag))
    throw new Error(`namespace.${setting} expands to ${JSON.stringify(tag)}: use letters, digits, ".", "_" and "-" (and {labels})`);
  return { tag, path };
}
