import { labelName } from "../runner/labels.js";
import type { Platform } from "../store/types.js";

/** Label prefixes that pick a non-Linux platform; everything else runs on Linux. */
export const MACOS_LABEL_PREFIX = "namespace-profile-macos-";
export const WINDOWS_LABEL_PREFIX = "namespace-profile-windows-";

/** Two labels of one request ask for different platforms; no single instance can serve both. */
export class PlatformConflictError extends Error {
  constructor(readonly labels: readonly string[]) {
    super(
      `labels ${labels.map((l) => JSON.stringify(l)).join(", ")} ask for both macOS and Windows; ` +
        `a runner runs on one platform, so request them as separate runners`,
    );
    this.name = "PlatformConflictError";
  }
}

/** The label name without an executor suffix, compared case-insensitively for the profile prefixes. */
function bareLabel(label: string): string {
  return labelName(label).toLowerCase();
}

/**
 * Which platform serves a request with these labels: `namespace-profile-macos-*` → macOS,
 * `namespace-profile-windows-*` → Windows, anything else → Linux. Pure; throws
 * PlatformConflictError when macOS and Windows labels are mixed.
 */
export function platformForLabels(labels: readonly string[]): Platform {
  const names = labels.map(bareLabel);
  const mac = names.some((n) => n.startsWith(MACOS_LABEL_PREFIX));
  const win = names.some((n) => n.startsWith(WINDOWS_LABEL_PREFIX));
  if (mac && win) throw new PlatformConflictError(labels);
  if (mac) return "macos";
  if (win) return "windows";
  return "linux";
}

/** The configuration keys that choose a machine type per platform. */
export interface MachineTypeDefaults {
  machine_type: string;
  macos_machine_type: string;
  windows_machine_type?: string | undefined;
}

/** Windows profile suffix → shape, as Namespace's own Windows profiles size them. */
export const WINDOWS_PROFILE_SHAPES: Readonly<Record<string, string>> = { small: "2x4", medium: "4x8", large: "8x16" };
export const WINDOWS_DEFAULT_SHAPE = "8x16";

/**
 * The machine type a request should launch with when it names none: the platform's configured
 * default. For Windows, an explicit `namespace.windows_machine_type` wins; otherwise the label's
 * size suffix (small/medium/large) decides, and 8x16 is the fallback.
 */
export function defaultMachineType(platform: Platform, labels: readonly string[], ns: MachineTypeDefaults): string {
  if (platform === "macos") return ns.macos_machine_type;
  if (platform === "windows") return ns.windows_machine_type ?? windowsShapeForLabels(labels);
  return ns.machine_type;
}

/** `namespace-profile-windows-medium` → "4x8"; no recognised size → 8x16. */
export function windowsShapeForLabels(labels: readonly string[]): string {
  for (const name of labels.map(bareLabel)) {
    if (!name.startsWith(WINDOWS_LABEL_PREFIX)) continue;
    const size = name.slice(WINDOWS_LABEL_PREFIX.length);
    const shape = WINDOWS_PROFILE_SHAPES[size];
    if (shape) return shape;
  }
  return WINDOWS_DEFAULT_SHAPE;
}
