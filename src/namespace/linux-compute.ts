import type { ContainerRequest, InstanceShapeRequest } from "./compute-types.js";

/**
 * Pieces of a Linux launch through the Compute API (namespace.linux_launch: compute_api): the
 * instance shape and the container network, which `nsc run` passes to the server as text and the
 * API wants as fields.
 */

/** A machine type or network setting the Compute API cannot take; says what would work. */
export class LinuxConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LinuxConfigError";
  }
}

const FORMS = 'CPUxMEM (vCPUs × GB), optionally prefixed linux/amd64: or linux/arm64:, e.g. "4x8" or "linux/arm64:8x16"';

/**
 * `namespace.machine_type` (or a request's machine type) as CreateInstanceRequest.shape:
 * `4x8` → 4 vCPUs, 8 GB, amd64 (nsc run's own default architecture); `linux/arm64:4x8` → arm64.
 */
export function linuxShape(machineType: string): InstanceShapeRequest {
  const m = /^(?:([a-z]+)\/([a-z0-9_]+):)?(\d+)x(\d+)$/i.exec(machineType.trim());
  if (!m) throw new LinuxConfigError(`machine type ${JSON.stringify(machineType)} is not ${FORMS}`);
  const [, os, arch, cpuText, memText] = m;
  if (os && os.toLowerCase() !== "linux")
    throw new LinuxConfigError(`machine type ${JSON.stringify(machineType)} is for ${os}, but this is a Linux runner; use ${FORMS}`);
  const machineArch = (arch ?? "amd64").toLowerCase();
  if (machineArch !== "amd64" && machineArch !== "arm64")
    throw new LinuxConfigError(
      `machine type ${JSON.stringify(machineType)}: the architecture must be amd64 or arm64, not ${JSON.stringify(arch)}`,
    );
  const virtualCpu = Number(cpuText);
  const memoryGb = Number(memText);
  if (virtualCpu <= 0 || memoryGb <= 0)
    throw new LinuxConfigError(`machine type ${JSON.stringify(machineType)} has a zero size; use ${FORMS}`);
  return { virtualCpu, memoryMegabytes: memoryGb * 1024, machineArch, os: "linux" };
}

/** `namespace.network` as the ContainerRequest network enum (BRIDGE or HOST); unset stays unset. */
export function containerNetwork(network: string | undefined): ContainerRequest["network"] {
  if (network === undefined || network === "") return undefined;
  const upper = network.toUpperCase();
  if (upper === "BRIDGE" || upper === "HOST") return upper;
  throw new LinuxConfigError(
    `namespace.network ${JSON.stringify(network)} cannot be sent to the Compute API, which knows "bridge" and "host" only; change it or use namespace.linux_launch: nsc`,
  );
}
