import { describe, expect, it } from "vitest";
import { LabelError, labelName, labelSlug, resolveLabel, resolveLabels } from "../../src/runner/labels.js";

describe("labelName", () => {
  it.each([
    ["ubuntu-latest", "ubuntu-latest"],
    ["self-hosted:host", "self-hosted"],
    ["ubuntu-latest:docker://node:20-bookworm", "ubuntu-latest"],
    ["debian:lxc://debian:bookworm", "debian"],
    [" spaced :host", "spaced"],
  ])("%s → %s", (label, name) => {
    expect(labelName(label)).toBe(name);
  });
});

describe("resolveLabel", () => {
  it("adds the executor to a bare label and keeps an existing suffix", () => {
    expect(resolveLabel("namespace-profile-linux-medium", "host")).toBe("namespace-profile-linux-medium:host");
    expect(resolveLabel("ubuntu", "docker://node:22")).toBe("ubuntu:docker://node:22");
    expect(resolveLabel("ubuntu:docker://node:20", "host")).toBe("ubuntu:docker://node:20");
  });

  it("rejects commas and empty names with a message saying what to change", () => {
    expect(() => resolveLabel("a,b", "host")).toThrow(/contains a comma/);
    expect(() => resolveLabel(":host", "host")).toThrow(LabelError);
    expect(() => resolveLabel("x", " ")).toThrow(/runner.executor is empty/);
  });
});

describe("resolveLabels", () => {
  it("keeps the first label of each name, in order", () => {
    expect(resolveLabels(["b", "a:docker://x", "a", "b:host"], "host")).toEqual(["b:host", "a:docker://x"]);
  });
  it("refuses an empty list", () => {
    expect(() => resolveLabels([], "host")).toThrow(/never gets a job/);
  });
});

describe("labelSlug", () => {
  it("is stable under order and suffixes, and sanitised", () => {
    expect(labelSlug(["Linux_Medium:host", "gpu"])).toBe("gpu-linux-medium");
    expect(labelSlug(["gpu", "Linux_Medium"])).toBe(labelSlug(["Linux_Medium:docker://x", "gpu:host"]));
    expect(labelSlug(["$(rm -rf /)", "`x`"])).toMatch(/^[a-z0-9-]+$/);
  });
  it("keeps long sets distinct and bounded", () => {
    const a = labelSlug(["namespace-profile-linux-extra-large-with-gpu", "another-very-long-label-name"]);
    const b = labelSlug(["namespace-profile-linux-extra-large-with-gpu", "another-very-long-label-name-2"]);
    expect(a.length).toBeLessThanOrEqual(48);
    expect(a).not.toBe(b);
  });
});
