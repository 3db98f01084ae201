import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import { PlatformConflictError, defaultMachineType } from "../namespace/platform.js";
import { runnerSourceProblem } from "../runner/runner-source.js";
import { canonicalScope, scopeKey } from "../forgejo/scope.js";
import type { Scope } from "../forgejo/scope.js";
import { badRequest, conflict, forbidden, tooMany } from "../http/errors.js";
import { QueueFullError } from "../store/errors.js";
import type { CreateDispatchResult, DispatchRecord, Platform, RunnerRecord } from "../store/types.js";
import { disallowedLabels, scopeAllowed } from "./allow.js";
import type { DispatchRequest } from "../api/dispatch-request.js";
import type { Records } from "./records.js";

export interface AcceptDeps {
  config: DispatcherConfig;
  records: Records;
  platformFor: (labels: readonly string[]) => Platform;
}

export interface Accepted {
  status: 200 | 202;
  dispatch: DispatchRecord;
  runners: RunnerRecord[];
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** A short random suffix; names must be valid nsc container names and Forgejo runner names. */
export function runnerName(prefix: string): string {
  const bytes = randomBytes(10);
  let s = "";
  for (const b of bytes) s += BASE32[b & 31];
  return `${prefix}${s}`;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * Validates a dispatch against policy and records it durably before anything is launched.
 * Asking again with the same idempotency key (explicit, or implied by the job) returns the first
 * dispatch; the same key with a different request is a conflict.
 */
export async function acceptDispatch(deps: AcceptDeps, req: DispatchRequest, headerKey: string | undefined): Promise<Accepted> {
  const { config, records } = deps;
  const labels = req.labels ?? config.forgejo.default_labels;
  // Forgejo names are case-insensitive: "Acme/App" and "acme/app" are one scope for caps,
  // allow lists and the idempotency check, so the record keeps the canonical spelling.
  const scope: Scope = canonicalScope(req.scope ?? config.forgejo.default_scope);
  checkAllowed(config, labels, scope);
  const platform = servablePlatform(deps, labels);
  const normalized: NormalizedRequest = {
    count: req.count,
    labels,
    scope,
    ttl_ms: req.ttl ?? config.namespace.duration,
    machine_type: req.machine_type ?? defaultMachineType(platform, labels, config.namespace),
    image: req.image ?? config.namespace.image,
    env: req.env ?? {},
    job: req.job ?? null,
  };
  const requestHash = createHash("sha256").update(canonical(normalized)).digest("hex");
  const key = headerKey ?? (req.job ? `job:${req.job.id}:${req.job.handle ?? req.job.attempt ?? 0}` : undefined);

  if (key) {
    const existing = await records.store.getDispatchByKey(key);
    if (existing) return replay(deps, existing, requestHash, key);
  }
  const { dispatch, runners } = newDispatch(deps, req, normalized, platform, key, requestHash);
  const result = await createOrQueueFull(deps, dispatch, runners);
  if (!result.created) return replay(deps, result.dispatch, requestHash, key as string);
  return { status: 202, dispatch: result.dispatch, runners: result.runners };
}

/** The request with every default filled in: what the idempotency check hashes and the dispatch records. */
interface NormalizedRequest {
  count: number;
  labels: string[];
  scope: Scope;
  ttl_ms: number;
  machine_type: string;
  image: string;
  env: Record<string, string>;
  job: DispatchRequest["job"] | null;
}

/** 403 for labels outside namespace.allow_labels or a scope outside namespace.allow_scopes. */
function checkAllowed(config: DispatcherConfig, labels: readonly string[], scope: Scope): void {
  const badLabels = disallowedLabels(labels, config.namespace.allow_labels);
  if (badLabels.length > 0) {
    throw forbidden(
      `label${badLabels.length > 1 ? "s" : ""} ${badLabels.map((l) => `"${l}"`).join(", ")} not allowed by namespace.allow_labels`,
      {
        labels: badLabels,
      },
    );
  }
  if (!scopeAllowed(scope, config.namespace.allow_scopes)) {
    throw forbidden(`scope "${scopeKey(scope)}" not allowed by namespace.allow_scopes`, { scope: scopeKey(scope) });
  }
}

/** The platform the labels run on; 400 when they name two, or one this dispatcher has no forgejo-runner binary for. */
function servablePlatform(deps: AcceptDeps, labels: readonly string[]): Platform {
  let platform: Platform;
  try {
    platform = deps.platformFor(labels);
  } catch (err) {
    if (err instanceof PlatformConflictError) throw badRequest(err.message, { labels });
    throw err;
  }
  // Refused before anything is recorded: a runner that can never get a forgejo-runner binary.
  const noRunner = runnerSourceProblem(platform, deps.config.runner);
  if (noRunner)
    throw badRequest(
      `labels ${labels.map((l) => `"${l}"`).join(", ")} run on ${platform}, which this dispatcher cannot serve: ${noRunner}`,
      { labels, platform },
    );
  return platform;
}

/** The dispatch and its pending runners as they are recorded (env values redacted in the recorded request). */
function newDispatch(
  deps: AcceptDeps,
  req: DispatchRequest,
  normalized: NormalizedRequest,
  platform: Platform,
  key: string | undefined,
  requestHash: string,
): { dispatch: DispatchRecord; runners: RunnerRecord[] } {
  const { config } = deps;
  const now = deps.records.now();
  const at = now.toISOString();
  const dispatch: DispatchRecord = {
    id: randomUUID(),
    idempotencyKey: key,
    requestHash,
    request: { ...normalized, env: Object.fromEntries(Object.keys(normalized.env).map((k) => [k, "[redacted]"])) },
    runnerNames: [],
    createdAt: at,
  };
  const runners: RunnerRecord[] = [];
  for (let i = 0; i < req.count; i++) {
    const reason = "accepted; waiting for a launch slot";
    runners.push({
      name: runnerName(config.runner.name_prefix),
      dispatchId: dispatch.id,
      state: "pending",
      reason,
      platform,
      labels: normalized.labels,
      scope: normalized.scope,
      machineType: normalized.machine_type,
      image: normalized.image,
      ttlMs: normalized.ttl_ms,
      env: normalized.env,
      job: req.job,
      launchAttempts: 0,
      createdAt: at,
      updatedAt: at,
      queueDeadline: new Date(now.getTime() + config.dispatcher.queue_timeout).toISOString(),
      history: [{ at, from: null, to: "pending", reason }],
    });
  }
  dispatch.runnerNames = runners.map((r) => r.name);
  return { dispatch, runners };
}

/**
 * Records the dispatch, or finds the one a concurrent request recorded with the key; a full queue is
 * 429. The queue is counted in the insert's own transaction: concurrent requests (or replicas) cannot overshoot it.
 */
function createOrQueueFull(deps: AcceptDeps, dispatch: DispatchRecord, runners: RunnerRecord[]): Promise<CreateDispatchResult> {
  const { config } = deps;
  return deps.records.store.createDispatch(dispatch, runners, { maxPending: config.dispatcher.max_queue }).catch((err: unknown) => {
    if (!(err instanceof QueueFullError)) throw err;
    throw tooMany(
      `the launch queue is full (${err.pending} runners pending, dispatcher.max_queue=${config.dispatcher.max_queue}); retry later`,
      Math.max(5, Math.round(config.dispatcher.supervise_interval / 1000)),
    );
  });
}

async function replay(deps: AcceptDeps, existing: DispatchRecord, requestHash: string, key: string): Promise<Accepted> {
  if (existing.requestHash !== requestHash) {
    throw conflict(`idempotency key "${key}" was already used for a different request (dispatch ${existing.id}); use a new key`, {
      dispatch_id: existing.id,
    });
  }
  const runners = await deps.records.store.listRunners({ dispatchId: existing.id });
  return { status: 200, dispatch: existing, runners };
}
