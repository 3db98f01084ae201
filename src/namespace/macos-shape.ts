import type { InstanceShapeRequest, Label } from "./compute-types.js";

/**
 * Shapes macOS instances accept (observed from API errors,
 * docs/upstream-contracts.md#macos-shapes-and-images).
 */
export const MACOS_VCPUS = [4, 6, 8, 12] as const;
export const MACOS_MEMORY_GB = [7, 14, 28, 56] as const;

/** A machine type, base image or cache setting that cannot work on macOS; says what would. */
export class MacosConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MacosConfigError";
  }
}

export interface MacosShape {
  virtualCpu: number;
  memoryMegabytes: number;
  machineArch: string;
  /** `macos/arm64:6x14`: the form `nsc create --machine_type` takes. */
  machineType: string;
  /** True when the request was rounded up to the next shape macOS offers. */
  rounded: boolean;
}

const allowed = `vCPU ${MACOS_VCPUS.join("/")} × memory ${MACOS_MEMORY_GB.join("/")} GB, e.g. 6x14 or macos/arm64:12x28`;

function roundUp(value: number, options: readonly number[]): number | undefined {
  return options.find((o) => o >= value);
}

/**
 * `CPUxMEM` (memory in GB; values of 1024 or more are read as MB), optionally prefixed
 * `macos/<arch>:`, normalised up to the nearest shape macOS offers. Shapes larger than the largest
 * macOS shape, other operating systems and malformed values are refused with the allowed set.
 */
export function parseMacosShape(machineType: string, arch = "arm64"): MacosShape {
  const text = machineType.trim();
  const m = /^(?:([a-z]+)\/([a-z0-9_]+):)?(\d+)x(\d+)$/i.exec(text);
  if (!m) throw new MacosConfigError(`macOS machine type "${machineType}" is not CPUxMEM; use ${allowed}`);
  const [, os, prefixArch, cpuText, memText] = m;
  if (os && os.toLowerCase() !== "macos") {
    throw new MacosConfigError(`machine type "${machineType}" is for ${os}, but this runner is macOS; use ${allowed}`);
  }
  const machineArch = (prefixArch ?? arch).toLowerCase();
  if (machineArch !== "arm64") throw new MacosConfigError(`macOS runners are arm64 only, not "${machineArch}"; use ${allowed}`);
  const cpu = Number(cpuText);
  const memRaw = Number(memText);
  const memGb = memRaw >= 1024 ? memRaw / 1024 : memRaw;
  if (cpu <= 0 || memGb <= 0) throw new MacosConfigError(`macOS machine type "${machineType}" has a zero size; use ${allowed}`);
  const vcpu = roundUp(cpu, MACOS_VCPUS);
  const gb = roundUp(memGb, MACOS_MEMORY_GB);
  if (vcpu === undefined || gb === undefined) {
    throw new MacosConfigError(`macOS machine type "${machineType}" is larger than any macOS shape; use ${allowed}`);
  }
  return {
    virtualCpu: vcpu,
    memoryMegabytes: gb * 1024,
    machineArch,
    machineType: `macos/${machineArch}:${vcpu}x${gb}`,
    rounded: vcpu !== cpu || gb !== memGb,
  };
}

export interface MacosImage {
  selectors: Label[];
  /** experimental.macosBaseImageId, only for presets that name one. */
  baseImageId?: string;
}

/** Named base images: the preset name → selectors (and base image id where Namespace uses one). */
export const MACOS_IMAGE_PRESETS: Readonly<Record<string, MacosImage>> = {
  tahoe: {
    selectors: [
      { name: "macos.version", value: "26.x" },
      { name: "image.with", value: "xcode-26" },
    ],
    baseImageId: "tahoe",
  },
  sequoia: { selectors: [{ name: "macos.version", value: "15.x" }] },
  sonoma: { selectors: [{ name: "macos.version", value: "14.x" }] },
};

/**
 * `namespace.macos_base_image_id`: a preset name (tahoe, sequoia, sonoma) or raw selectors
 * `key=value,key=value` (the syntax of `nsc create --selectors`).
 */
export function macosImage(baseImageId: string): MacosImage {
  const text = baseImageId.trim();
  const preset = MACOS_IMAGE_PRESETS[text.toLowerCase()];
  if (preset) return preset;
  if (!text.includes("=")) {
    throw new MacosConfigError(
      `namespace.macos_base_image_id "${baseImageId}" is neither a preset (${Object.keys(MACOS_IMAGE_PRESETS).join(", ")}) nor key=value selectors such as macos.version=15.x,image.with=xcode-16`,
    );
  }
  const selectors = text.split(",").map((part) => {
    const i = part.indexOf("=");
    const name = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (i <= 0 || !value) throw new MacosConfigError(`invalid selector "${part}" in namespace.macos_base_image_id: expected key=value`);
    return { name, value };
  });
  return { selectors };
}

/** `--selectors` value for `nsc create`. */
export function selectorsFlag(image: MacosImage): string {
  return image.selectors.map((s) => `${s.name}=${s.value}`).join(",");
}

export function shapeRequest(shape: MacosShape, image: MacosImage): InstanceShapeRequest {
  return {
    virtualCpu: shape.virtualCpu,
    memoryMegabytes: shape.memoryMegabytes,
    machineArch: shape.machineArch,
    os: "macos",
    selectors: image.selectors,
  };
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/**
 * A cache size such as `50gb`, `50G`, `512mb` or `20GiB` (binary units, case-insensitive; the
 * syntax nsc's --volume accepts) in MiB.
 */
export function parseSizeMb(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new MacosConfigError(`cache size "${text}" is not a size; use a value such as 50gb or 512mb`);
  const bytes = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  const mb = Math.floor(bytes / 2 ** 20);
  if (mb < 1) throw new MacosConfigError(`cache size "${text}" is smaller than 1 MiB`);
  return mb;
}
