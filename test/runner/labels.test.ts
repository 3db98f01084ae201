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

describe("label resolution, edge by edge", () => {
  it.each(["", "   ", ":host", " :docker://x"])("refuses the empty label %j, saying every label needs a name", (label) => {
    expect(() => resolveLabel(label, "host")).toThrow(`empty runner label in ${JSON.stringify(label)}: every label needs a name`);
    try {
      resolveLabel(label, "host");
    } catch (err) {
      expect((err as Error).name).toBe("LabelError");
    }
  });

  it("trims the label and the executor", () => {
    expect(resolveLabel("  ubuntu:docker://node:20  ", "host")).toBe("ubuntu:docker://node:20");
    expect(resolveLabel(" gpu ", " docker://x ")).toBe("gpu:docker://x");
  });
});

describe("labelSlug, edge by edge", () => {
  it.each([
    [[], "none"],
    [[":host", ""], "none"],
    [["GPU", "gpu:host"], "gpu"],
    // Sorted by lower-case name: "_" sorts before letters only in lower case.
    [["_x", "a"], "x-a"],
    [["a--b"], "a-b"],
    [["a$$b", "c"], "a-b-c"],
    [["a".repeat(20), "b".repeat(27)], `${"a".repeat(20)}-${"b".repeat(27)}`],
  ])("%j → %s", (labels, slug) => {
    expect(labelSlug(labels)).toBe(slug);
  });

  it("hashes long sets: a readable prefix (dashes kept, a trailing one dropped) and eight hex digits", () => {
    expect(labelSlug(["namespace-profile-linux-extra-large-runner-with-gpu", "x0"])).toBe(
      "namespace-profile-linux-extra-large-run-03faf715",
    );
    expect(labelSlug(["a".repeat(38), "z".repeat(20)])).toMatch(new RegExp(`^${"a".repeat(38)}-[0-9a-f]{8}$`));
  });

  it("keeps long sets apart that only differ in where one name ends, and ignores empty names", () => {
    const a = "a".repeat(45);
    expect(labelSlug([`${a}a`, "bc"])).not.toBe(labelSlug([`${a}ab`, "c"]));
    expect(labelSlug([`${a}a`, "bc", ":host"])).toBe(labelSlug([`${a}a`, "bc"]));
  });
});
