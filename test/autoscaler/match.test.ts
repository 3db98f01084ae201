import { describe, expect, it } from "vitest";
import { coversAll, labelName, labelNames, sameNames } from "../../src/autoscaler/labels.js";
import { matchTarget, unmatchedReason } from "../../src/autoscaler/match.js";

const targets = [
  { name: "docker", labels: ["ubuntu-latest:docker://node:20-bookworm", "docker"] },
  { name: "host", labels: ["self-hosted:host", "linux:host", "ubuntu-latest"] },
  { name: "gpu", labels: ["gpu", "linux", "ubuntu-latest"] },
];

describe("label names", () => {
  it("strips the executor suffix, including docker:// URLs with their own colons", () => {
    expect(labelName("ubuntu-latest:docker://node:20-bookworm")).toBe("ubuntu-latest");
    expect(labelName("self-hosted:host")).toBe("self-hosted");
    expect(labelName("debian:lxc://debian:bookworm")).toBe("debian");
    expect(labelName("plain")).toBe("plain");
  });

  it("dedupes names and drops empty ones", () => {
    expect(labelNames(["a:host", "a:docker://x", "b", ""])).toEqual(["a", "b"]);
  });

  it("compares names exactly and case-sensitively", () => {
    expect(coversAll(["Linux"], ["linux"])).toBe(false);
    expect(coversAll(["linux:host", "gpu"], ["gpu", "linux"])).toBe(true);
    expect(sameNames(["a:host", "b"], ["b", "a:docker://x"])).toBe(true);
    expect(sameNames(["a", "b"], ["a"])).toBe(false);
  });
});

describe("matchTarget", () => {
  it("takes the first target in config order that has every runs-on label", () => {
    expect(matchTarget(targets, ["ubuntu-latest"])?.name).toBe("docker");
    expect(matchTarget(targets, ["ubuntu-latest", "linux"])?.name).toBe("host");
    expect(matchTarget(targets, ["gpu", "ubuntu-latest"])?.name).toBe("gpu");
  });

  it("ignores suffixes on the job side too", () => {
    expect(matchTarget(targets, ["self-hosted:host"])?.name).toBe("host");
  });

  it("needs every label: a superset on the job side does not match", () => {
    expect(matchTarget(targets, ["gpu", "windows"])).toBeUndefined();
    expect(unmatchedReason(["gpu", "windows"])).toBe("no target matches [gpu, windows]");
    expect(unmatchedReason(null)).toBe("no target matches []");
  });

  it("fits a job without runs-on to the first target (any runner can take it)", () => {
    expect(matchTarget(targets, [])?.name).toBe("docker");
    expect(matchTarget(targets, null)?.name).toBe("docker");
  });

  it("does not match a label that differs only by case", () => {
    expect(matchTarget(targets, ["GPU"])).toBeUndefined();
  });
});
