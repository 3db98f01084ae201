import { describe, expect, it } from "vitest";
import {
  MACOS_MEMORY_GB,
  MACOS_VCPUS,
  MacosConfigError,
  macosImage,
  parseMacosShape,
  parseSizeMb,
  selectorsFlag,
} from "../../src/namespace/macos-shape.js";
import { PlatformConflictError, defaultMachineType, platformForLabels, windowsShapeForLabels } from "../../src/namespace/platform.js";

describe("platformForLabels", () => {
  it("routes macOS and Windows profiles and sends everything else to Linux", () => {
    expect(platformForLabels(["namespace-profile-macos-large"])).toBe("macos");
    expect(platformForLabels(["self-hosted", "namespace-profile-macos-xcode:host"])).toBe("macos");
    expect(platformForLabels(["namespace-profile-windows-small"])).toBe("windows");
    expect(platformForLabels(["Namespace-Profile-Windows-Large:host"])).toBe("windows");
    expect(platformForLabels(["namespace-profile-linux-medium"])).toBe("linux");
    expect(platformForLabels(["ubuntu-latest:docker://node:20"])).toBe("linux");
    expect(platformForLabels([])).toBe("linux");
    // Only the label name counts: an executor argument that mentions macOS does not.
    expect(platformForLabels(["build:docker://namespace-profile-macos-x"])).toBe("linux");
    expect(platformForLabels(["namespace-profile-macos"])).toBe("linux");
  });

  it("refuses a request that mixes macOS and Windows", () => {
    expect(() => platformForLabels(["namespace-profile-macos-a", "namespace-profile-windows-b"])).toThrow(PlatformConflictError);
    expect(() => platformForLabels(["namespace-profile-macos-a", "namespace-profile-windows-b"])).toThrow(/separate runners/);
  });
});

describe("machine type defaults", () => {
  const ns = { machine_type: "4x8", macos_machine_type: "6x14", windows_machine_type: undefined };
  it("uses the platform's configured default, Windows by profile size", () => {
    expect(defaultMachineType("linux", ["x"], ns)).toBe("4x8");
    expect(defaultMachineType("macos", ["namespace-profile-macos-a"], ns)).toBe("6x14");
    expect(defaultMachineType("windows", ["namespace-profile-windows-small"], ns)).toBe("2x4");
    expect(defaultMachineType("windows", ["namespace-profile-windows-medium"], ns)).toBe("4x8");
    expect(defaultMachineType("windows", ["namespace-profile-windows-large"], ns)).toBe("8x16");
    expect(defaultMachineType("windows", ["namespace-profile-windows-vs2022"], ns)).toBe("8x16");
    expect(defaultMachineType("windows", ["namespace-profile-windows-small"], { ...ns, windows_machine_type: "16x32" })).toBe("16x32");
    expect(windowsShapeForLabels(["other", "namespace-profile-windows-medium:host"])).toBe("4x8");
  });
});

describe("parseMacosShape", () => {
  it("keeps every allowed shape exactly, in GB and MB and with the os/arch prefix", () => {
    for (const cpu of MACOS_VCPUS) {
      for (const gb of MACOS_MEMORY_GB) {
        const want = {
          virtualCpu: cpu,
          memoryMegabytes: gb * 1024,
          machineArch: "arm64",
          machineType: `macos/arm64:${cpu}x${gb}`,
          rounded: false,
        };
        expect(parseMacosShape(`${cpu}x${gb}`)).toEqual(want);
        expect(parseMacosShape(`macos/arm64:${cpu}x${gb}`)).toEqual(want);
        expect(parseMacosShape(`${cpu}x${gb * 1024}`)).toEqual(want);
      }
    }
  });

  it("rounds every in-range size up to the next allowed shape", () => {
    for (let cpu = 1; cpu <= 12; cpu++) {
      for (let gb = 1; gb <= 56; gb++) {
        const s = parseMacosShape(`${cpu}x${gb}`);
        const wantCpu = MACOS_VCPUS.find((c) => c >= cpu)!;
        const wantGb = MACOS_MEMORY_GB.find((g) => g >= gb)!;
        expect([s.virtualCpu, s.memoryMegabytes]).toEqual([wantCpu, wantGb * 1024]);
        expect(s.rounded).toBe(wantCpu !== cpu || wantGb !== gb);
      }
    }
  });

  it("refuses sizes beyond the largest shape, other systems and malformed text, listing what works", () => {
    for (const bad of [
      "13x28",
      "12x57",
      "0x14",
      "6x0",
      "6X14GB",
      "linux/amd64:4x8",
      "windows/amd64:8x16",
      "macos/amd64:6x14",
      "",
      "6",
      "x14",
    ]) {
      expect(() => parseMacosShape(bad), bad).toThrow(MacosConfigError);
      expect(() => parseMacosShape(bad), bad).toThrow(/vCPU 4\/6\/8\/12 × memory 7\/14\/28\/56 GB/);
    }
  });
});

describe("macosImage", () => {
  it("knows tahoe, sequoia and sonoma and takes raw selectors", () => {
    expect(macosImage("tahoe")).toEqual({
      selectors: [
        { name: "macos.version", value: "26.x" },
        { name: "image.with", value: "xcode-26" },
      ],
      baseImageId: "tahoe",
    });
    expect(macosImage("Sequoia")).toEqual({ selectors: [{ name: "macos.version", value: "15.x" }] });
    expect(macosImage("sonoma")).toEqual({ selectors: [{ name: "macos.version", value: "14.x" }] });
    expect(selectorsFlag(macosImage("a=1, b = 2"))).toBe("a=1,b=2");
    expect(macosImage("image.with=xcode-16=beta").selectors).toEqual([{ name: "image.with", value: "xcode-16=beta" }]);
    expect(() => macosImage("=x")).toThrow(/invalid selector/);
    expect(() => macosImage("a=")).toThrow(/invalid selector/);
    expect(() => macosImage("monterey")).toThrow(/neither a preset/);
  });
});

describe("parseSizeMb", () => {
  it("reads binary units like nsc's --volume", () => {
    expect(parseSizeMb("50gb")).toBe(51200);
    expect(parseSizeMb("50G")).toBe(51200);
    expect(parseSizeMb("20GiB")).toBe(20480);
    expect(parseSizeMb("512mb")).toBe(512);
    expect(parseSizeMb("1t")).toBe(1048576);
    expect(parseSizeMb("1.5g")).toBe(1536);
    expect(() => parseSizeMb("100kb")).toThrow(/smaller than 1 MiB/);
    expect(() => parseSizeMb("big")).toThrow(/not a size/);
  });
});
