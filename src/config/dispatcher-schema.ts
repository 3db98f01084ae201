import { z } from "zod";
import { scopeSchema } from "../forgejo/scope.js";
import {
  EVEN_WITH_OTHER_PROBLEMS,
  authSchema,
  durationMs,
  envRecord,
  extraHeaders,
  httpSchema,
  httpUrl,
  listenAddress,
  logSchema,
} from "./common.js";
import { DEFAULT_POOL_SIZE, SCHEMA_NAME, isPostgresUrl } from "../store/postgres/postgres-config.js";
import { DEFAULT_RUNNER_VERSION, defaultRunnerImage, ephemeralRunnerProblem, imageRunnerVersion } from "../runner/runner-version.js";

const labelList = z.array(z.string().min(1)).min(1);

const forgejoSchema = z
  .object({
    base_url: httpUrl("https://forgejo.example.com"),
    /** What runners dial back to; defaults to base_url. */
    instance_url: httpUrl("https://forgejo.example.com").optional(),
    token: z.string().min(1).optional(),
    token_file: z.string().optional(),
    default_scope: scopeSchema.default({ level: "instance" }),
    default_labels: labelList.default(["namespace-profile-linux-medium"]),
    timeout: durationMs.prefault("30s"),
    extra_headers: extraHeaders.default({}),
    /** auto: ephemeral REST runners on Forgejo >= 15, the registration token otherwise. */
    registration: z.enum(["auto", "ephemeral", "token"]).default("auto"),
  })
  .strict()
  .superRefine((f, ctx) => {
    // Runs even when other keys are invalid, so every problem is listed at once.
    if (!f.token && !f.token_file) ctx.addIssue({ code: "custom", path: ["token"], message: "required (or set forgejo.token_file)" });
  }, EVEN_WITH_OTHER_PROBLEMS);

const capSchema = z
  .object({
    /** Applies to requests whose labels include every one of these. */
    labels: labelList.optional(),
    /** "instance", "org:acme", "repo:acme/app", "repo:acme/*". */
    scope: z.string().min(1).optional(),
    max: z.number().int().nonnegative(),
  })
  .strict();

const namespaceSchema = z
  .object({
    nsc_binary: z.string().default("nsc"),
    /** NSC_TOKEN_FILE for nsc and the Compute API bearer ({"bearer_token": …}). */
    token_file: z.string().optional(),
    region: z.string().optional(),
    compute_base_url: httpUrl("https://ord4.compute.namespaceapis.com").optional(),
    /**
     * How Linux instances are created. nsc (default): `nsc run`, which can run the container as
     * namespace.user but puts the runner token on its command line. compute_api: CreateInstance,
     * with the token in the request body; the container runs as the image's own user.
     */
    linux_launch: z.enum(["nsc", "compute_api"]).default("nsc"),
    /** Linux container image; defaults to code.forgejo.org/forgejo/runner:<runner.version>. */
    image: z.string().min(1).optional(),
    machine_type: z.string().default("4x8"),
    duration: durationMs.prefault("30m"),
    /** How long `nsc run` may wait for the instance to become ready. */
    wait_timeout: durationMs.prefault("5m"),
    /** Concurrent launches (nsc process spawns), not running jobs. */
    max_parallel: z.number().int().positive().default(4),
    /** Live runners at most, across every label set and scope. */
    max_runners: z.number().int().positive().default(20),
    network: z.string().optional(),
    user: z.string().default("root"),
    /** forgejo-runner's work directory inside the instance. */
    workdir: z.string().default("/tmp/forgejo-runner"),
    environment: envRecord.default({}),
    /** Glob patterns ("namespace-profile-*"); empty allows every label. */
    allow_labels: z.array(z.string().min(1)).default([]),
    /** Scope patterns ("instance", "org:acme", "repo:acme/*"); empty allows every scope. */
    allow_scopes: z.array(z.string().min(1)).default([]),
    /** Extra labels put on every instance. */
    instance_tags: z.record(z.string(), z.string()).default({}),
    linux_cache_tag: z.string().optional(),
    linux_cache_path: z.string().default("/cache"),
    linux_cache_size: z.string().optional(),
    macos_base_image_id: z.string().default("tahoe"),
    macos_machine_arch: z.enum(["arm64"]).default("arm64"),
    macos_machine_type: z.string().default("6x14"),
    macos_cache_tag: z.string().optional(),
    macos_cache_path: z.string().default("/Users/runner/.cache/nscloud"),
    macos_cache_size: z.string().optional(),
    /** Fall back to `nsc create` + `nsc ssh` when the Compute API cannot create a macOS instance. */
    macos_fallback_nsc: z.boolean().default(true),
    windows_machine_type: z.string().optional(),
  })
  .strict()
  .superRefine((n, ctx) => {
    if (n.linux_launch !== "compute_api") return;
    if (!n.token_file) {
      ctx.addIssue({
        code: "custom",
        path: ["linux_launch"],
        message:
          'compute_api needs namespace.token_file ({"bearer_token": …}, the Compute API credential); set it, or use linux_launch: nsc',
      });
    }
    if (!n.region) {
      // Instances made through the API are supervised and destroyed with nsc: both must look at one region.
      ctx.addIssue({
        code: "custom",
        path: ["linux_launch"],
        message: "compute_api needs namespace.region (e.g. ord4), so that nsc list/destroy see the instances the Compute API creates",
      });
    }
  }, EVEN_WITH_OTHER_PROBLEMS)
  .prefault({});

const binarySource = z
  .object({
    url: z.url({ protocol: /^https?$/, message: "must be an http(s) URL of the forgejo-runner binary (or a .zip holding it, on Windows)" }),
    sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "must be the file's SHA-256: 64 hex digits (sha256sum FILE)"),
  })
  .strict();

const runnerSchema = z
  .object({
    name_prefix: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, "lowercase letters, digits and dashes, at most 31 characters")
      .default("nscloud-"),
    /** Executor suffix for labels given without one: host, docker://image, lxc://image. */
    executor: z.string().default("host"),
    /** one-job: one job then exit. daemon: keep polling until the TTL. */
    mode: z.enum(["one-job", "daemon"]).default("one-job"),
    /** The forgejo-runner release: the default Linux image's tag and the macOS/Windows binary. */
    version: z.string().min(1).default(DEFAULT_RUNNER_VERSION),
    /** Install Node.js (apk/apt-get) when the Linux image lacks it: JavaScript actions on the host executor need it. */
    install_node: z.boolean().default(true),
    /** Where macOS and Windows get forgejo-runner: upstream publishes Linux builds only. */
    binaries: z.object({ macos_arm64: binarySource.optional(), windows_amd64: binarySource.optional() }).strict().prefault({}),
    /** Without binaries.macos_arm64, build runner.version from its source release with Go on the Mac. */
    macos_build_from_source: z.boolean().default(true),
  })
  .strict()
  .prefault({});

/** Where the dispatcher keeps its records when neither state_path nor store is set. */
export const DEFAULT_STATE_PATH = "./forgejo-nsc-dispatcher.db";

/** Settings of the PostgreSQL store; unused while dispatcher.store is not set. */
const postgresSchema = z
  .object({
    /** Connections this dispatcher keeps at most; every replica has its own pool. */
    pool_size: z.number().int().positive().max(1000).default(DEFAULT_POOL_SIZE),
    /** A statement running longer is cancelled and the call answers 503 (the dispatcher retries its own writes). */
    statement_timeout: durationMs.prefault("10s"),
    /** Connecting (TCP, TLS, login) or waiting for a free pooled connection longer fails the same way. */
    connect_timeout: durationMs.prefault("5s"),
    /** The schema holding the tables; created when missing. Two dispatcher fleets may share a database with two schemas. */
    schema: z
      .string()
      .regex(SCHEMA_NAME, "lower-case letters, digits and underscores, starting with a letter or underscore")
      .default("public"),
    tls: z
      .object({
        /** PEM file of the CA that signed the server's certificate; turns TLS on (verify-full unless the URL's sslmode says otherwise). */
        ca_file: z.string().min(1).optional(),
        /** false accepts any certificate (encryption without authentication); only with a reason. */
        reject_unauthorized: z.boolean().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .prefault({});

const dispatcherSchema = z
  .object({
    /** Written on every instance as forgejo-nsc.owner; two dispatchers sharing a workspace need different ids. */
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/)
      .default("default"),
    /** The SQLite file, unless `store` names a server database (see docs/postgresql.md). */
    state_path: z.string().optional(),
    /** A postgres:// URL (it holds the password: store_file reads it from a file); selects the PostgreSQL store. */
    store: z.string().optional(),
    /** A file holding the store URL (systemd credentials, agenix); read at load like the other *_file secrets. */
    store_file: z.string().optional(),
    postgres: postgresSchema,
    supervise_interval: durationMs.prefault("10s"),
    /** Pending runners beyond this answer 429. */
    max_queue: z.number().int().positive().default(1000),
    /** A pending runner not launched within this is failed. */
    queue_timeout: durationMs.prefault("1h"),
    launch_attempts: z.number().int().positive().default(3),
    caps: z.array(capSchema).default([]),
    /** Finished records are kept this long. */
    retention: durationMs.prefault("168h"),
    shutdown_timeout: durationMs.prefault("30s"),
    /**
     * With dispatcher.store (replicas, docs/replicas.md): how long the acting replica's claim on the
     * lease lasts without renewal; failover takes at most lease_ttl + lease_ttl/3. Default: supervise_interval.
     */
    lease_ttl: durationMs.optional(),
    /** This replica's name in the lease table and /readyz; default: the host name. */
    replica_name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/)
      .optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.state_path !== undefined && isPostgresUrl(d.state_path)) {
      ctx.addIssue({
        code: "custom",
        path: ["state_path"],
        message: "is a PostgreSQL URL; state_path names the SQLite file: put the URL in dispatcher.store (or store_file) instead",
      });
    }
    if (d.store === undefined) return;
    // The URL holds the password: messages describe it, never echo it.
    if (!isPostgresUrl(d.store))
      ctx.addIssue({
        code: "custom",
        path: ["store"],
        message: "must be a postgres:// or postgresql:// URL; for SQLite set dispatcher.state_path and leave store out",
      });
    if (d.state_path !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["state_path"],
        message: "set either dispatcher.state_path (SQLite) or dispatcher.store (PostgreSQL), not both",
      });
  })
  .transform((d) => ({ ...d, state_path: d.state_path ?? DEFAULT_STATE_PATH }))
  .prefault({});

export const dispatcherConfigSchema = z
  .object({
    listen: listenAddress.default("127.0.0.1:8080"),
    forgejo: forgejoSchema,
    namespace: namespaceSchema,
    runner: runnerSchema,
    dispatcher: dispatcherSchema,
    auth: authSchema,
    http: httpSchema,
    log: logSchema,
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.forgejo.registration === "ephemeral") {
      // With "auto" the server decides; the credential source checks then (src/dispatcher/credentials.ts).
      for (const [path, problem] of runnerVersionProblems(c)) ctx.addIssue({ code: "custom", path, message: problem });
    }
  })
  .transform((c) => ({ ...c, namespace: { ...c.namespace, image: c.namespace.image ?? defaultRunnerImage(c.runner.version) } }));

/** Runner versions too old for ephemeral runners, as [config path, problem]. */
export function runnerVersionProblems(c: { namespace: { image?: string | undefined }; runner: { version: string } }): [string[], string][] {
  const out: [string[], string][] = [];
  const imageVersion = c.namespace.image ? imageRunnerVersion(c.namespace.image) : undefined;
  const linux = imageVersion
    ? ephemeralRunnerProblem(imageVersion, `namespace.image (${c.namespace.image})`)
    : c.namespace.image
      ? undefined
      : ephemeralRunnerProblem(c.runner.version, "runner.version (the default image's tag)");
  if (linux) out.push([imageVersion ? ["namespace", "image"] : ["runner", "version"], linux]);
  const binaries =
    imageVersion || c.namespace.image
      ? ephemeralRunnerProblem(c.runner.version, "runner.version (the macOS and Windows runner)")
      : undefined;
  if (binaries) out.push([["runner", "version"], binaries]);
  return out;
}

export type DispatcherConfig = z.infer<typeof dispatcherConfigSchema>;
export type CapConfig = z.infer<typeof capSchema>;
