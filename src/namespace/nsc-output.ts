import { z } from "zod";

/**
 * Schemas for every JSON answer nsc gives (docs/upstream-contracts.md#nsc-cli): what we read is
 * checked before it is used, so a changed or broken nsc is a clear error instead of a wrong
 * instance ID in the records. Objects are loose: keys we do not read may come and go between nsc
 * releases.
 */

/** Instance IDs as nsc prints them (base32, e.g. 8bqc1v2r0cd6a); also what we pass back on argv. */
export const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

const instanceId = z.string().regex(INSTANCE_ID, { error: "is not an instance ID (letters, digits, - and _)" });
const credentials = z.object({ username: z.string(), password: z.string() });

/**
 * `nsc run -o json` and `nsc create -o json` (docs/upstream-contracts.md#nsc-run, #nsc-create);
 * nsc before v0.0.480 prints cluster_id only.
 */
export const createdOutput = z
  .looseObject({ instance_id: instanceId.optional(), cluster_id: instanceId.optional(), cluster_url: z.string().optional() })
  .refine((o) => o.instance_id !== undefined || o.cluster_id !== undefined, { error: "has neither instance_id nor cluster_id" });

/** `nsc list -o json` (docs/upstream-contracts.md#nsc-list): an array, or null when nothing matches. */
export const listOutput = z
  .array(
    z.looseObject({
      cluster_id: instanceId,
      labels: z.record(z.string(), z.string()).nullish(),
      created_at: z.string().nullish(),
    }),
  )
  .nullable();

/** `nsc describe -o json` (docs/upstream-contracts.md#nsc-describe): the summary list, or null. */
export const describeOutput = z.array(z.looseObject({ resource: z.string() })).nullable();

/**
 * The `nsc create --output_json_to` record (docs/upstream-contracts.md#nsc-create). May hold
 * service credentials: never log it.
 */
export const instanceRecord = z.looseObject({
  cluster_id: instanceId,
  app_url: z.string().optional(),
  created: z.string().optional(),
  deadline: z.string().optional(),
  shape: z
    .looseObject({
      virtual_cpu: z.number().optional(),
      memory_megabytes: z.number().optional(),
      machine_arch: z.string().optional(),
      os: z.string().optional(),
    })
    .optional(),
  platform: z.array(z.string()).optional(),
  label: z.array(z.object({ name: z.string(), value: z.string() })).optional(),
  service_state: z
    .array(
      z.looseObject({
        name: z.string(),
        status: z.string().optional(),
        endpoint: z.string().optional(),
        credentials: credentials.optional(),
      }),
    )
    .optional(),
});
export type NscInstanceRecord = z.infer<typeof instanceRecord>;

/**
 * The one JSON line `nsc instance proxy -o json` prints
 * (docs/upstream-contracts.md#nsc-ssh-instance-proxy-and-port-forward); the service's key is dynamic.
 */
export const proxyLine = z.looseObject({ endpoint: z.string().regex(/^.+:\d{1,5}$/, { error: "is not host:port" }) });
export const proxyService = z.looseObject({ credentials: credentials.optional() }).optional();

/**
 * Where and how an answer differs from its schema, e.g. `instance_id: Invalid input: expected
 * string, received number`. Zod's messages name types and patterns, never the values, so nothing
 * nsc printed (service passwords included) ends up in the text.
 */
export function describeMismatch(error: z.ZodError): string {
  const shown = error.issues.slice(0, 3).map((i) => {
    const where = i.path
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("")
      .replace(/^\./, "");
    return `${where || "the answer"}: ${i.message}`;
  });
  const more = error.issues.length > 3 ? ` (and ${error.issues.length - 3} more)` : "";
  return shown.join("; ") + more;
}
