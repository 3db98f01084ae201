import { describe, expect, it } from "vitest";
import { ComputeApiError } from "../../src/namespace/compute-api.js";
import type { ComputeErrorCode } from "../../src/namespace/compute-api.js";
import { cacheVolume } from "../../src/namespace/cache-volume.js";
import { computeLaunchErrorKind, nscLaunchErrorKind } from "../../src/namespace/launch-errors.js";
import type { NscErrorKind } from "../../src/namespace/nsc-errors.js";
import { NscError } from "../../src/namespace/nsc-errors.js";

describe("nscLaunchErrorKind: what a failed nsc run or create means for the launch", () => {
  it.each<[NscErrorKind, string, string]>([
    ["capacity", "run", "capacity"],
    ["capacity", "create", "capacity"],
    ["auth", "run", "auth"],
    ["auth", "create", "auth"],
    ["invalid", "run", "invalid"],
    ["invalid", "create", "invalid"],
    ["gone", "run", "transient"],
    ["gone", "create", "transient"],
    ["transient", "run", "transient"],
    ["transient", "create", "transient"],
    // nsc create retries capacity until our timeout ends it; nsc run fails capacity at once.
    ["timeout", "create", "capacity"],
    ["timeout", "run", "transient"],
  ])("%s from nsc %s → %s", (kind, command, expected) => {
    expect(nscLaunchErrorKind(new NscError("failed", kind, command))).toBe(expected);
  });
});

describe("computeLaunchErrorKind: what a failed Compute API call means for the launch", () => {
  it.each<[ComputeErrorCode, string]>([
    ["unauthenticated", "auth"],
    ["permission_denied", "auth"],
    ["token", "auth"],
    ["invalid_argument", "invalid"],
    ["failed_precondition", "invalid"],
    ["out_of_range", "invalid"],
    ["unimplemented", "invalid"],
    ["resource_exhausted", "capacity"],
    ["unavailable", "transient"],
    ["deadline_exceeded", "transient"],
    ["timeout", "transient"],
    ["network", "transient"],
    ["internal", "transient"],
    ["not_found", "transient"],
    ["bad_response", "transient"],
  ])("%s → %s", (code, expected) => {
    expect(computeLaunchErrorKind(new ComputeApiError("CreateInstance", code, "no"))).toBe(expected);
  });
});

describe("cacheVolume", () => {
  it("is absent without a tag, expands {labels} and checks what Namespace accepts", () => {
    expect(cacheVolume("linux_cache_tag", undefined, "/cache", ["a"])).toBeUndefined();
    expect(cacheVolume("linux_cache_tag", "", "/cache", ["a"])).toBeUndefined();
    expect(cacheVolume("macos_cache_tag", "ci-{labels}", "/c", ["macos-14"])).toEqual({ tag: "ci-macos-14", path: "/c" });
    expect(() => cacheVolume("macos_cache_tag", "-{labels}", "/c", ["x"])).toThrow(
      /namespace\.macos_cache_tag expands to "-x": use letters/,
    );
    expect(() => cacheVolume("linux_cache_tag", "a b", "/c", [])).toThrow(/namespace\.linux_cache_tag/);
  });
});
