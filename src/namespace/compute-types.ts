import { z } from "zod";

/**
 * Wire types of the Namespace Compute API (namespace.cloud.compute.v1beta, proto3 JSON).
 * Responses are parsed with zod because proto3 JSON omits every default-valued field and sends
 * int64 values as strings; requests are plain interfaces we build ourselves.
 */

/** int64 arrives as a JSON string ("28672"); accept numbers too. */
const int64 = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(n)) {
    ctx.addIssue({ code: "custom", message: `"${String(v)}" is not an integer` });
    return z.NEVER;
  }
  return n;
});

/** int32 is a JSON number, but proto3 JSON readers accept strings too, so be as lenient. */
const int32 = int64;

export const labelSchema = z.object({ name: z.string().default(""), value: z.string().default("") });
export type Label = z.infer<typeof labelSchema>;

export const shapeSchema = z.object({
  virtualCpu: int32.optional(),
  memoryMegabytes: int32.optional(),
  machineArch: z.string().optional(),
  os: z.string().optional(),
  selectors: z.array(labelSchema).default([]),
});

export const INSTANCE_STATUSES = [
  "STATUS_UNKNOWN",
  "PENDING",
  "CREATING",
  "RUNNING",
  "DESTROYED",
  "DESTROYING",
  "SUSPENDING",
  "SUSPENDED",
  "ERROR",
] as const;

export const instanceMetadataSchema = z.object({
  instanceId: z.string().min(1),
  /** STATUS_UNKNOWN is the proto default and therefore never on the wire. */
  status: z.string().default("STATUS_UNKNOWN"),
  createdAt: z.string().optional(),
  destroyedAt: z.string().optional(),
  deadline: z.string().optional(),
  documentedPurpose: z.string().optional(),
  shape: shapeSchema.optional(),
  labels: z.array(labelSchema).default([]),
  creatorId: z.string().optional(),
});
export type InstanceMetadata = z.infer<typeof instanceMetadataSchema>;

export const describeInstanceResponseSchema = z.object({
  instanceUrl: z.string().optional(),
  metadata: instanceMetadataSchema,
  // No shutdown reason: the SDK (namespacelabs/typescript-sdk compute_pb.ts, 2026-02) defines an
  // InstanceMetadata.ShutdownReason message, but no field of InstanceMetadata or of this response
  // holds one. An ended instance's story is in the dashboard at instanceUrl.
});
export type DescribeInstanceResponse = z.infer<typeof describeInstanceResponseSchema>;

export const listInstancesResponseSchema = z.object({
  instances: z.array(instanceMetadataSchema).default([]),
  /** bytes → base64; absent when there are no more results. */
  paginationCursor: z.string().optional(),
});
export type ListInstancesResponse = z.infer<typeof listInstancesResponseSchema>;

export const emptyResponseSchema = z.object({});

/** A Connect error body: `{"code": "not_found", "message": "…", "details": […]}`. */
export const connectErrorSchema = z.object({ code: z.string(), message: z.string().default("") });

export const CONNECT_CODES = [
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
] as const;
export type ConnectCode = (typeof CONNECT_CODES)[number];

// Requests: only the fields we send.

export interface InstanceShapeRequest {
  virtualCpu: number;
  memoryMegabytes: number;
  machineArch: string;
  os: string;
  selectors?: Label[];
}

export interface ApplicationRequest {
  name: string;
  command: string;
  args: string[];
  environment: Record<string, string>;
  workloadType: "JOB";
}

/**
 * A Linux container (namespace.cloud.compute.v1beta.ContainerRequest). It has no user override
 * (`nsc run --user` uses the private API's user_override): the container runs as the image's user.
 */
export interface ContainerRequest {
  name: string;
  imageRef: string;
  /** Replace the image's CMD; an ENTRYPOINT would be kept. */
  args: string[];
  environment: Record<string, string>;
  network?: "BRIDGE" | "HOST";
  volumes?: VolumeRequest[];
  /** JOB: when the container terminates, the instance terminates. */
  workloadType: "JOB" | "SERVICE";
}

export interface VolumeRequest {
  tag: string;
  mountPoint: string;
  /** int64: sent as a string, as proto3 JSON writers do. */
  sizeMb?: string;
  persistencyKind: "CACHE" | "PERSISTENT";
}

export interface CreateInstanceRequest {
  shape: InstanceShapeRequest;
  documentedPurpose?: string;
  labels: Label[];
  /** RFC 3339. */
  deadline: string;
  applications?: ApplicationRequest[];
  /** Linux only. */
  containers?: ContainerRequest[];
  volumes?: VolumeRequest[];
  experimental?: { macosBaseImageId?: string };
}

export interface LabelFilterEntry {
  name: string;
  value?: string;
  op: "EQUAL" | "NOT_EQUAL" | "EXIST";
}

export interface ListInstancesRequest {
  labelFilter?: LabelFilterEntry[];
  includeCompleteRuns?: boolean;
  maxEntries?: string;
  paginationCursor?: string;
}
