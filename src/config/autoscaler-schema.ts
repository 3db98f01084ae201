import { Cron } from "croner";
import { z } from "zod";
import { scopeSchema } from "../forgejo/scope.js";
import { unsafeListenProblem } from "../http/listen-safety.js";
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
import { formatDuration } from "./duration.js";

/** Instance names appear in URLs (/webhook/<name>) and idempotency keys. */
const instanceName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, "letters, digits, '-' and '_' only (it becomes /webhook/<name>), at most 63 characters");

/** Labels as the dispatcher accepts them: no commas or whitespace. */
const label = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^,\s]+$/, "must not contain commas or whitespace");

const dispatcherEndpointFields = {
  url: httpUrl("http://127.0.0.1:8080"),
  timeout: durationMs.prefault("10s"),
  /** Bearer token for the dispatcher API (one of its auth.tokens). */
  token: z.string().min(1).optional(),
  token_file: z.string().optional(),
};

const dispatcherSchema = z.object(dispatcherEndpointFields).strict();

/** The per-instance override: every field optional, merged over the top-level `dispatcher`. */
const dispatcherOverrideSchema = z
  .object({
    url: dispatcherEndpointFields.url.optional(),
    timeout: durationMs.optional(),
    token: z.string().min(1).optional(),
    token_file: z.string().optional(),
  })
  .strict();

const forgejoSchema = z
  .object({
    base_url: httpUrl("https://forgejo.example.com"),
    token: z.string().min(1).optional(),
    token_file: z.string().optional(),
    timeout: durationMs.prefault("15s"),
    extra_headers: extraHeaders.default({}),
    /** Overrides detection from GET /api/v1/version (for proxies that rewrite it). */
    kind: z.enum(["auto", "forgejo", "gitea"]).default("auto"),
  })
  .strict()
  .superRefine((f, ctx) => {
    // Runs even when other keys are invalid, so every problem is listed at once.
    if (!f.token)
      ctx.addIssue({
        code: "custom",
        path: ["token"],
        message: "required (or set token_file): a PAT that can list jobs and runners of the scope",
      });
  }, EVEN_WITH_OTHER_PROBLEMS);

const cronExpression = z.string().superRefine((pattern, ctx) => {
  try {
    new Cron(pattern, { paused: true });
  } catch (err) {
    ctx.addIssue({
      code: "custom",
      message: `"${pattern}" is not a cron expression (${(err as Error).message}); use five fields such as "0 8 * * 1-5"`,
    });
  }
});

const timeZone = z.string().superRefine((tz, ctx) => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
  } catch {
    ctx.addIssue({ code: "custom", message: `"${tz}" is not an IANA time zone such as Europe/Berlin or UTC` });
  }
});

/**
 * One scheduled period: it starts at every match of `cron` and lasts `duration`, or until the next
 * match of `until`. While it is active the target keeps `min_idle` warm runners.
 */
const schedulePeriodSchema = z
  .object({
    cron: cronExpression,
    duration: durationMs.optional(),
    until: cronExpression.optional(),
    min_idle: z.number().int().nonnegative(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if ((p.duration === undefined) === (p.until === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["duration"],
        message: 'set exactly one of duration (e.g. "10h") or until (a cron expression such as "0 18 * * 1-5")',
      });
    }
    if (p.duration !== undefined && p.duration <= 0) {
      ctx.addIssue({ code: "custom", path: ["duration"], message: "must be longer than 0s" });
    }
  });

const targetSchema = z
  .object({
    /** Shown in status and metrics; defaults to the labels joined with "+". */
    name: z
      .string()
      .regex(/^[A-Za-z0-9._+-]{1,64}$/, "letters, digits, '.', '_', '+' and '-' only")
      .optional(),
    labels: z.array(label).min(1, "give at least one label"),
    min_idle: z.number().int().nonnegative().default(0),
    min_idle_schedule: z.array(schedulePeriodSchema).default([]),
    timezone: timeZone.default("UTC"),
    /** Runner lifetime cap passed to the dispatcher (Go duration); the dispatcher's default when absent. */
    ttl: durationMs.optional(),
    machine_type: z.string().min(1).optional(),
    image: z.string().min(1).optional(),
    env: envRecord.default({}),
    /** Runners of this target in flight at the dispatcher at most (jobs and warm pool together). */
    max_runners: z.number().int().positive().optional(),
    /** An idle runner above the wanted warm-pool size is stopped after idling this long (Forgejo >= 15, Gitea). */
    warm_idle_timeout: durationMs.prefault("5m"),
    /** An idle runner with less TTL left than this is stopped and replaced; default min(10m, ttl/3). */
    warm_retire_before: durationMs.optional(),
    /** A warm pool sized from the recent arrival rate (jobs expected during one boot), on top of min_idle. */
    min_idle_auto: z
      .object({
        max: z.number().int().positive(),
        window: durationMs.prefault("30m"),
        boot_time: durationMs.prefault("30s"),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    const sizes = [t.min_idle, ...(Array.isArray(t.min_idle_schedule) ? t.min_idle_schedule.map((p) => p?.min_idle) : [])].filter(
      (n) => typeof n === "number",
    );
    if (t.min_idle_auto && typeof t.min_idle_auto === "object" && typeof t.min_idle_auto.max === "number") sizes.push(t.min_idle_auto.max);
    const peak = Math.max(0, ...sizes);
    if (typeof t.max_runners === "number" && peak > t.max_runners) {
      ctx.addIssue({
        code: "custom",
        path: ["max_runners"],
        message: `is ${t.max_runners}, below the largest min_idle (${peak}); the warm pool could never fill`,
      });
    }
    if (typeof t.warm_retire_before === "number" && typeof t.ttl === "number" && t.warm_retire_before >= t.ttl) {
      ctx.addIssue({
        code: "custom",
        path: ["warm_retire_before"],
        message: `must be shorter than ttl (${formatDuration(t.ttl)}): every warm runner would be retired as soon as it is up; lower it or raise ttl`,
      });
    }
  }, EVEN_WITH_OTHER_PROBLEMS);

const webhookSchema = z
  .object({
    /** Where Forgejo delivers: the public URL of this daemon's /webhook/<name>. */
    url: z.url({
      protocol: /^https?$/,
      message: "must be the http(s) URL Forgejo should deliver to, e.g. https://autoscaler.example.com/webhook/forgejo",
    }),
    content_type: z.enum(["json", "form"]).default("json"),
    /** Defaults by server kind: Gitea workflow_job; Forgejo push, pull_request and action_run_*. */
    events: z.array(z.string().min(1)).min(1).optional(),
    active: z.boolean().default(true),
  })
  .strict();

const instanceSchema = z
  .object({
    name: instanceName,
    forgejo: forgejoSchema,
    scope: scopeSchema.default({ level: "instance" }),
    poll_interval: durationMs.prefault("10s"),
    disable_polling: z.boolean().default(false),
    resync_interval: durationMs.prefault("5m"),
    webhook_secret: z.string().min(1).optional(),
    webhook_secret_file: z.string().optional(),
    webhook: webhookSchema.optional(),
    dispatcher: dispatcherOverrideSchema.optional(),
    targets: z.array(targetSchema).min(1, "give at least one target (a label set to serve)"),
  })
  .strict()
  .superRefine((i, ctx) => {
    // Runs even when other keys are invalid, so every problem is listed at once: read defensively.
    if (typeof i.poll_interval === "number" && i.poll_interval < 1000) {
      ctx.addIssue({ code: "custom", path: ["poll_interval"], message: "must be at least 1s (each poll is several API calls)" });
    }
    if (typeof i.resync_interval === "number" && i.resync_interval !== 0 && i.resync_interval < 1000) {
      ctx.addIssue({ code: "custom", path: ["resync_interval"], message: "must be 0 (never) or at least 1s" });
    }
    const names = new Set<string>();
    (Array.isArray(i.targets) ? i.targets : []).forEach((t, idx) => {
      if (!t || !Array.isArray(t.labels)) return;
      const n = targetName(t);
      if (names.has(n))
        ctx.addIssue({
          code: "custom",
          path: ["targets", idx, "name"],
          message: `"${n}" is used by an earlier target; names must be unique within an instance`,
        });
      names.add(n);
    });
  }, EVEN_WITH_OTHER_PROBLEMS);

const webhooksSchema = z
  .object({
    /** Largest accepted delivery; push payloads with many commits can be big. */
    body_limit: z.number().int().positive().default(1_048_576),
    /** Deliveries arriving within this window cause one reconcile, not one each. */
    debounce: durationMs.prefault("1s"),
  })
  .strict()
  .prefault({});

/**
 * Several autoscaler replicas (docs/replicas.md): the PostgreSQL database where they meet. One
 * reconciles at a time (it holds the lease); webhooks any of them receives reach it.
 */
const replicasSchema = z
  .object({
    /** postgres:// URL (it holds the password: store_file reads it from a file). */
    store: z
      .string({ error: "required: the postgres:// URL of the database the replicas share (or replicas.store_file, a file holding it)" })
      .regex(/^postgres(ql)?:\/\//i, "must be a postgres:// or postgresql:// URL"),
    /** A file holding the URL (systemd credentials, agenix); read at load like the other *_file secrets. */
    store_file: z.string().optional(),
    /** The schema of the lease and webhook-relay tables; created when missing. */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, "lower-case letters, digits and underscores, starting with a letter or underscore")
      .default("public"),
    /** How long the leader's claim lasts without renewal: failover takes at most ttl + ttl/3. */
    lease_ttl: durationMs.prefault("10s"),
    /** This replica's name in the lease table and /readyz; default: the host name. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/)
      .optional(),
  })
  .strict();

export const autoscalerConfigSchema = z
  .object({
    listen: listenAddress.default("127.0.0.1:8081"),
    dispatcher: dispatcherSchema.optional(),
    instances: z.array(instanceSchema).min(1, "configure at least one Forgejo instance"),
    replicas: replicasSchema.optional(),
    webhooks: webhooksSchema,
    auth: authSchema,
    http: httpSchema,
    log: logSchema,
  })
  .strict()
  .superRefine((c, ctx) => {
    // Runs even when other keys are invalid, so every problem is listed at once: read defensively.
    const seen = new Map<string, number>();
    (Array.isArray(c.instances) ? c.instances : []).forEach((inst, idx) => {
      if (!inst || typeof inst !== "object") return;
      if (typeof inst.name === "string") {
        const key = inst.name.toLowerCase();
        const first = seen.get(key);
        if (first !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["instances", idx, "name"],
            message: `"${inst.name}" is already the name of instances[${first}]; names must be unique`,
          });
        } else seen.set(key, idx);
      }
      if (!c.dispatcher?.url && !inst.dispatcher?.url) {
        ctx.addIssue({
          code: "custom",
          path: ["instances", idx, "dispatcher", "url"],
          message: "required when there is no top-level dispatcher.url",
        });
      }
    });
    if (typeof c.listen !== "string" || !c.auth || !Array.isArray(c.auth.tokens)) return;
    const unsafe = unsafeListenProblem("autoscaler", c.listen, c.auth);
    if (unsafe) ctx.addIssue({ code: "custom", path: ["auth", "tokens"], message: unsafe });
  }, EVEN_WITH_OTHER_PROBLEMS);

export type AutoscalerConfig = z.infer<typeof autoscalerConfigSchema>;
export type InstanceConfig = AutoscalerConfig["instances"][number];
export type TargetConfig = InstanceConfig["targets"][number];
/** warm_retire_before in force: the configured value, else 10m or a third of the target's ttl if that is shorter. */
export function warmRetireBeforeMs(t: Pick<TargetConfig, "ttl" | "warm_retire_before">): number {
  if (t.warm_retire_before !== undefined) return t.warm_retire_before;
  return t.ttl === undefined ? DEFAULT_RETIRE_BEFORE_MS : Math.min(DEFAULT_RETIRE_BEFORE_MS, Math.floor(t.ttl / 3));
}
const DEFAULT_RETIRE_BEFORE_MS = 10 * 60_000;

export type SchedulePeriod = TargetConfig["min_idle_schedule"][number];
export type WebhookConfig = NonNullable<InstanceConfig["webhook"]>;

/** The dispatcher an instance talks to: its override merged over the top-level block. */
export interface DispatcherEndpoint {
  url: string;
  timeoutMs: number;
  token?: string | undefined;
}

export function dispatcherFor(c: AutoscalerConfig, inst: InstanceConfig): DispatcherEndpoint {
  const o = inst.dispatcher ?? {};
  const url = o.url ?? c.dispatcher?.url;
  if (!url) throw new Error(`instance ${inst.name} has no dispatcher.url`);
  return { url, timeoutMs: o.timeout ?? c.dispatcher?.timeout ?? 10_000, token: o.token ?? c.dispatcher?.token };
}

export function targetName(t: Pick<TargetConfig, "name" | "labels">): string {
  return t.name ?? t.labels.join("+");
}

/** Not errors, but worth a line in the log at start (and in --check output). */
export function configWarnings(c: AutoscalerConfig): string[] {
  const warnings: string[] = [];
  c.instances.forEach((inst, i) => {
    const sets = new Map<string, number>();
    inst.targets.forEach((t, j) => {
      const key = [...new Set(t.labels.map((l) => l.split(":")[0]))].sort().join(",");
      const first = sets.get(key);
      if (first !== undefined) {
        warnings.push(
          `instances[${i}].targets[${j}]: same label names as targets[${first}] (${key}); jobs always match the first, so this target only keeps its warm pool`,
        );
      } else sets.set(key, j);
    });
    if (!inst.webhook_secret) {
      warnings.push(
        `instances[${i}] (${inst.name}): no webhook_secret, so deliveries to /webhook/${inst.name} are accepted unsigned; set webhook_secret (or webhook_secret_file) to require a valid signature`,
      );
    }
  });
  return warnings;
}
