import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { FakeNsc } from "../nsc/index.js";

/**
 * A fake Namespace Compute API (contracts/nsc.md §11, §13.10): Connect with JSON over HTTP/1.1 on
 * 127.0.0.1. It checks the bearer token and the content type, validates macOS creates the way the
 * real service is observed to, omits default-valued fields and sends int64 values as strings in
 * its answers, walks instances through CREATING → RUNNING → DESTROYED / ERROR under test control,
 * and records every request.
 *
 * Given a fake nsc (`nsc` option), a Linux CreateInstance with one container is made inside that
 * fake's state (`nsc __fake api-create`, the JSON spec on stdin): `nsc list/describe/destroy` see the
 * instance, the runner simulator boots it, and the fake nsc's `execute` knob really runs its args.
 * Such an instance's live status stays under test control as above (initialStatus, setStatus); its
 * end comes from the fake nsc (the container exited, nsc destroy, the deadline on nsc's clock), and
 * DestroyInstance or a terminal setStatus ends it there too.
 *
 * Unknown request fields are ignored, as connect-go's JSON codec does (DiscardUnknown), so a field
 * the API does not have — a container `user`, say — is silently dropped, never honoured.
 */

export const SERVICE_PREFIX = "/namespace.cloud.compute.v1beta.ComputeService/";
export const MACOS_VCPUS = [4, 6, 8, 12];
export const MACOS_MEMORY_MB = [7, 14, 28, 56].map((g) => g * 1024);
const LIVE = new Set(["PENDING", "CREATING", "RUNNING"]);

export interface RecordedComputeRequest {
  method: string;
  path: string;
  headers: Record<string, string | undefined>;
  /** Parsed JSON body, or undefined when it was not JSON. */
  body: unknown;
  rawBody: string;
  status: number;
  at: number;
}

export interface FakeInstance {
  instanceId: string;
  status: string;
  createdAt: string;
  deadline?: string;
  destroyedAt?: string;
  documentedPurpose?: string;
  labels: { name: string; value: string }[];
  shape: { virtualCpu: number; memoryMegabytes: number; machineArch: string; os: string; selectors: { name: string; value: string }[] };
  /** The CreateInstance body as received. */
  request: Record<string, unknown>;
  destroyReason?: string;
  /** Set when the instance lives in the fake nsc's state (a Linux container instance). */
  nsc?: { region: string; containerId: string; containerName?: string };
}

export interface ComputeKnobs {
  /** CreateInstance answers 429 resource_exhausted: always (true) or for the next N calls. */
  capacity: boolean | number;
  /** The next N calls of a method fail with this Connect code and HTTP status. */
  failNext: { method: string; code: string; status: number; message?: string; times: number }[];
  /** Status a new instance starts in. */
  initialStatus: string;
  /** Destroyed instances answer not_found instead of DESTROYED on DescribeInstance. */
  forgetDestroyed: boolean;
  /** ListInstances page size when the request sets no maxEntries. */
  pageSize: number;
  /** Reply with a non-JSON body and this status to the next call (a proxy error page). */
  htmlErrorNext: number | undefined;
}

export interface FakeComputeApi {
  url: string;
  token: string;
  requests: RecordedComputeRequest[];
  instances: Map<string, FakeInstance>;
  knobs: ComputeKnobs;
  setKnobs(k: Partial<ComputeKnobs>): void;
  calls(method: string): RecordedComputeRequest[];
  setStatus(id: string, status: string): void;
  /** The application ended: DESTROYED with destroyedAt. */
  finish(id: string): void;
  /**
   * The instance failed: ERROR with destroyedAt. DescribeInstanceResponse carries no reason (the
   * SDK's compute_pb.ts defines InstanceMetadata.ShutdownReason but no field holds it).
   */
  fail(id: string): void;
  /** Adds an instance as if created by somebody else (or by nsc). */
  addInstance(partial: Partial<FakeInstance> & { labels: { name: string; value: string }[] }): FakeInstance;
  close(): Promise<void>;
}

function base32Id(): string {
  const alphabet = "0123456789abcdefghijklmnopqrstuv";
  const bytes = randomBytes(13);
  return Array.from(bytes, (b) => alphabet[b % 32]).join("");
}

/** proto3 JSON writers drop empty strings, empty lists and zero numbers. */
function omitDefaults(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(omitDefaults);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined || v === null || v === "" || v === 0 || v === false) continue;
      if (Array.isArray(v) && v.length === 0) continue;
      out[k] = omitDefaults(v);
    }
    return out;
  }
  return value;
}

function asNumber(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "string" && /^-?\d+$/.test(v)) return Number(v);
  return undefined;
}

class ConnectFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** proto3 JSON readers accept the lowerCamelCase name and the original snake_case one. */
function field(o: Record<string, unknown>, camel: string): unknown {
  return o[camel] ?? o[camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)];
}

function validateVolume(v: Record<string, unknown>): void {
  if (!v.tag || !field(v, "mountPoint")) throw new ConnectFailure(400, "invalid_argument", "volume needs tag and mount_point");
  if (!["CACHE", "PERSISTENT", 1, 2].includes(field(v, "persistencyKind") as string | number))
    throw new ConnectFailure(400, "invalid_argument", "volume needs persistency_kind");
  const size = field(v, "sizeMb");
  if (size !== undefined && asNumber(size) === undefined) throw new ConnectFailure(400, "invalid_argument", "size_mb must be an integer");
}

/** A ContainerRequest as the server would read it; a malformed one is invalid_argument. */
function validateContainer(c: Record<string, unknown>): void {
  const image = field(c, "imageRef");
  if (typeof image !== "string" || !image) throw new ConnectFailure(400, "invalid_argument", "container image_ref is required");
  if (c.args !== undefined && (!Array.isArray(c.args) || c.args.some((a) => typeof a !== "string")))
    throw new ConnectFailure(400, "invalid_argument", "container args must be strings");
  const env = c.environment;
  if (
    env !== undefined &&
    (typeof env !== "object" || env === null || Array.isArray(env) || Object.values(env).some((v) => typeof v !== "string"))
  ) {
    throw new ConnectFailure(400, "invalid_argument", "container environment must map names to strings");
  }
  const envVars = field(c, "envVars");
  if (envVars !== undefined && (!Array.isArray(envVars) || envVars.some((e) => !e || typeof (e as { name?: unknown }).name !== "string"))) {
    throw new ConnectFailure(400, "invalid_argument", "container env_vars need a name");
  }
  const workload = field(c, "workloadType");
  if (workload !== undefined && !["JOB", "SERVICE", 1, 2].includes(workload as string | number))
    throw new ConnectFailure(400, "invalid_argument", `unknown workload type ${String(workload)}`);
  if (c.network !== undefined && !["BRIDGE", "HOST", 1, 2].includes(c.network as string | number))
    throw new ConnectFailure(400, "invalid_argument", `unknown network ${String(c.network)}`);
  const volumes = c.volumes;
  if (volumes !== undefined && !Array.isArray(volumes))
    throw new ConnectFailure(400, "invalid_argument", "container volumes must be a list");
  for (const v of (volumes ?? []) as Record<string, unknown>[]) validateVolume(v);
}

/** Runs `nsc __fake <args>` of the backing fake nsc, `input` on stdin; resolves with its stdout. */
function fakeNscCall(nsc: FakeNsc, args: string[], input = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(nsc.bin, ["__fake", ...args], { env: { ...process.env, ...nsc.env }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`fake nsc __fake ${args[0] ?? ""} exited ${String(code)}: ${err.trim()}`)),
    );
    child.stdin.end(input);
  });
}

export async function createFakeComputeApi(
  opts: {
    token?: string;
    now?: () => Date;
    /** Linux container instances live in this fake nsc's state (see above). */
    nsc?: FakeNsc;
    /** The region this API serves, where those instances are made (default: the fake nsc's defaultRegion knob, else "eu"). */
    region?: string;
  } = {},
): Promise<FakeComputeApi> {
  const token = opts.token ?? `nsrt_fake_${randomBytes(8).toString("hex")}`;
  const now = opts.now ?? (() => new Date());
  const requests: RecordedComputeRequest[] = [];
  const instances = new Map<string, FakeInstance>();
  const knobs: ComputeKnobs = {
    capacity: false,
    failNext: [],
    initialStatus: "CREATING",
    forgetDestroyed: false,
    pageSize: 100,
    htmlErrorNext: undefined,
  };

  function expire(): void {
    const t = now().getTime();
    for (const inst of instances.values()) {
      // A backed instance's deadline runs on the fake nsc's clock.
      if (!inst.nsc && LIVE.has(inst.status) && inst.deadline && Date.parse(inst.deadline) <= t) {
        inst.status = "DESTROYED";
        inst.destroyedAt = now().toISOString();
      }
    }
  }

  function metadata(inst: FakeInstance): unknown {
    return omitDefaults({
      instanceId: inst.instanceId,
      status: inst.status,
      createdAt: inst.createdAt,
      destroyedAt: inst.destroyedAt,
      deadline: inst.deadline,
      documentedPurpose: inst.documentedPurpose,
      shape: inst.shape,
      labels: inst.labels.map((l) => omitDefaults(l)),
    });
  }

  function describe(inst: FakeInstance): unknown {
    return omitDefaults({
      instanceUrl: `https://cloud.namespace.so/fake-workspace/instance/${inst.instanceId}`,
      metadata: metadata(inst),
      containers: inst.nsc ? [{ id: inst.nsc.containerId, name: inst.nsc.containerName }] : [],
    });
  }

  function validateCreate(body: Record<string, unknown>): FakeInstance {
    const shape = (body.shape ?? {}) as Record<string, unknown>;
    const os = String(shape.os ?? "");
    const apps = Array.isArray(body.applications) ? (body.applications as Record<string, unknown>[]) : [];
    const containers = Array.isArray(body.containers) ? (body.containers as Record<string, unknown>[]) : [];
    const experimental = (body.experimental ?? {}) as Record<string, unknown>;
    const selectors = Array.isArray(shape.selectors) ? (shape.selectors as { name?: string; value?: string }[]) : [];
    if (apps.length > 0 && os !== "macos")
      throw new ConnectFailure(400, "invalid_argument", `applications are only supported on macos (shape.os is "${os}")`);
    if (containers.length > 0 && os !== "linux")
      throw new ConnectFailure(400, "invalid_argument", `containers are only supported on linux (shape.os is "${os}")`);
    if (os === "linux" && !["amd64", "arm64"].includes(String(shape.machineArch ?? "")))
      throw new ConnectFailure(400, "invalid_argument", "linux requires machine_arch amd64 or arm64");
    for (const c of containers) validateContainer(c);
    const cpu = asNumber(shape.virtualCpu);
    const mem = asNumber(shape.memoryMegabytes);
    if (cpu === undefined || cpu <= 0 || mem === undefined || mem <= 0)
      throw new ConnectFailure(400, "invalid_argument", "shape needs virtual_cpu and memory_megabytes");
    if (os === "macos") {
      if (shape.machineArch !== "arm64") throw new ConnectFailure(400, "invalid_argument", `macos requires machine_arch arm64`);
      if (!MACOS_VCPUS.includes(cpu))
        throw new ConnectFailure(400, "invalid_argument", `unsupported virtual_cpu ${String(shape.virtualCpu)} for macos`);
      if (!MACOS_MEMORY_MB.includes(mem))
        throw new ConnectFailure(400, "invalid_argument", `unsupported memory_megabytes ${String(shape.memoryMegabytes)} for macos`);
      if (selectors.length === 0 && !experimental.macosBaseImageId) {
        throw new ConnectFailure(400, "invalid_argument", "macos instances must select a base image");
      }
    }
    for (const s of selectors) {
      if (!s.name || !s.value) throw new ConnectFailure(400, "invalid_argument", "selector needs name and value");
    }
    for (const app of apps) {
      if (typeof app.command !== "string" || !app.command)
        throw new ConnectFailure(400, "invalid_argument", "application command is required");
      if (app.workloadType !== undefined && app.workloadType !== "JOB" && app.workloadType !== 1) {
        throw new ConnectFailure(400, "invalid_argument", `unknown workload type ${String(app.workloadType)}`);
      }
    }
    const volumes = Array.isArray(body.volumes) ? (body.volumes as Record<string, unknown>[]) : [];
    for (const v of volumes) validateVolume(v);
    const deadline = typeof body.deadline === "string" ? body.deadline : undefined;
    if (deadline !== undefined && Number.isNaN(Date.parse(deadline)))
      throw new ConnectFailure(400, "invalid_argument", "deadline is not RFC 3339");
    const labels = Array.isArray(body.labels)
      ? (body.labels as { name?: string; value?: string }[]).map((l) => ({ name: l.name ?? "", value: l.value ?? "" }))
      : [];
    return {
      instanceId: base32Id(),
      status: knobs.initialStatus,
      createdAt: now().toISOString(),
      deadline,
      documentedPurpose: typeof body.documentedPurpose === "string" ? body.documentedPurpose : undefined,
      labels,
      shape: {
        virtualCpu: cpu,
        memoryMegabytes: mem,
        machineArch: String(shape.machineArch ?? "amd64"),
        os: os || "linux",
        selectors: selectors.map((s) => ({ name: s.name ?? "", value: s.value ?? "" })),
      },
      request: body,
    };
  }

  function matches(inst: FakeInstance, filter: { name?: string; value?: string; op?: string }[]): boolean {
    return filter.every((f) => {
      const label = inst.labels.find((l) => l.name === f.name);
      const op = f.op ?? "EQUAL";
      if (op === "EXIST") return label !== undefined;
      if (op === "NOT_EQUAL") return label?.value !== (f.value ?? "");
      return label !== undefined && label.value === (f.value ?? "");
    });
  }

  const backing = opts.nsc;
  const backingRegion = opts.region ?? backing?.state().knobs.defaultRegion ?? "eu";

  /** Makes a Linux container instance in the fake nsc's state; the API instance takes its ID. */
  async function createInNsc(inst: FakeInstance, body: Record<string, unknown>, nsc: FakeNsc): Promise<void> {
    const containers = body.containers as Record<string, unknown>[];
    if (containers.length !== 1) throw new ConnectFailure(501, "unimplemented", "the fake runs one container per instance");
    const c = containers[0]!;
    const env: Record<string, string> = { ...((c.environment ?? {}) as Record<string, string>) };
    for (const e of (field(c, "envVars") ?? []) as { name: string; value?: string; fromSecretId?: string }[]) {
      if (e.fromSecretId) throw new ConnectFailure(501, "unimplemented", "the fake cannot resolve secret references");
      env[e.name] = e.value ?? "";
    }
    const spec = {
      region: backingRegion,
      image: field(c, "imageRef"),
      name: typeof c.name === "string" ? c.name : "",
      shape: {
        virtual_cpu: inst.shape.virtualCpu,
        memory_megabytes: inst.shape.memoryMegabytes,
        machine_arch: inst.shape.machineArch,
        os: "linux",
      },
      deadline: inst.deadline ?? null,
      documented_purpose: inst.documentedPurpose ?? "",
      labels: Object.fromEntries(inst.labels.map((l) => [l.name, l.value])),
      env,
      args: (c.args ?? []) as string[],
      volumes: ((c.volumes ?? []) as Record<string, unknown>[]).map((v) => {
        const size = asNumber(field(v, "sizeMb"));
        const kind = ["CACHE", 2].includes(field(v, "persistencyKind") as string | number) ? "cache" : "persistent";
        return { kind, tag: v.tag, mount_point: field(v, "mountPoint"), ...(size !== undefined ? { size_mb: size } : {}) };
      }),
      network: typeof c.network === "string" ? c.network : null,
    };
    let made: { instance_id: string; container_id: string };
    try {
      made = JSON.parse(await fakeNscCall(nsc, ["api-create"], JSON.stringify(spec))) as typeof made;
    } catch (err) {
      throw new ConnectFailure(500, "internal", `fake: ${(err as Error).message}`);
    }
    inst.instanceId = made.instance_id;
    inst.nsc = { region: backingRegion, containerId: made.container_id, ...(spec.name ? { containerName: spec.name } : {}) };
  }

  /** A backed instance ended in the fake nsc (container exit, nsc destroy, deadline): the API says DESTROYED. */
  async function syncBacked(): Promise<void> {
    if (!backing) return;
    const live = [...instances.values()].filter((i) => i.nsc && LIVE.has(i.status));
    if (live.length === 0) return;
    const status = JSON.parse(await fakeNscCall(backing, ["api-status", ...live.map((i) => i.instanceId)])) as Record<
      string,
      { destroyed_at: string | null } | null
    >;
    for (const inst of live) {
      const st = status[inst.instanceId];
      if (!LIVE.has(inst.status)) continue;
      if (!st || st.destroyed_at) {
        inst.status = "DESTROYED";
        inst.destroyedAt = st?.destroyed_at ?? now().toISOString();
      }
    }
  }

  async function handle(method: string, body: Record<string, unknown>): Promise<unknown> {
    expire();
    await syncBacked();
    switch (method) {
      case "CreateInstance": {
        if (knobs.capacity === true || (typeof knobs.capacity === "number" && knobs.capacity > 0)) {
          if (typeof knobs.capacity === "number") knobs.capacity -= 1;
          throw new ConnectFailure(429, "resource_exhausted", "workspace ran out of capacity");
        }
        const inst = validateCreate(body);
        if (backing && Array.isArray(body.containers) && body.containers.length > 0) await createInNsc(inst, body, backing);
        instances.set(inst.instanceId, inst);
        return describe(inst);
      }
      case "DescribeInstance": {
        const inst = instances.get(String(body.instanceId ?? body.instance_id ?? ""));
        if (!inst || (knobs.forgetDestroyed && !LIVE.has(inst.status))) throw new ConnectFailure(404, "not_found", "instance not found");
        return describe(inst);
      }
      case "DestroyInstance": {
        const inst = instances.get(String(body.instanceId ?? body.instance_id ?? ""));
        if (!inst || !LIVE.has(inst.status)) throw new ConnectFailure(404, "not_found", "instance not found");
        if (inst.nsc && backing)
          await fakeNscCall(backing, ["api-destroy", inst.instanceId, typeof body.reason === "string" ? body.reason : ""]);
        inst.status = "DESTROYED";
        inst.destroyedAt = now().toISOString();
        if (typeof body.reason === "string") inst.destroyReason = body.reason;
        return {};
      }
      case "ListInstances": {
        const filter = Array.isArray(body.labelFilter) ? (body.labelFilter as { name?: string; value?: string; op?: string }[]) : [];
        const all = [...instances.values()]
          .filter((i) => body.includeCompleteRuns === true || LIVE.has(i.status))
          .filter((i) => matches(i, filter))
          .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.instanceId.localeCompare(b.instanceId));
        const size = asNumber(body.maxEntries) ?? knobs.pageSize;
        const offset =
          typeof body.paginationCursor === "string" && body.paginationCursor
            ? Number(Buffer.from(body.paginationCursor, "base64").toString("utf8"))
            : 0;
        const page = all.slice(offset, offset + size);
        const next = offset + size < all.length ? Buffer.from(String(offset + size)).toString("base64") : undefined;
        return omitDefaults({ instances: page.map(metadata), paginationCursor: next });
      }
      case "GetSSHConfig": {
        const inst = instances.get(String(body.instanceId ?? ""));
        if (!inst || !LIVE.has(inst.status)) throw new ConnectFailure(404, "not_found", "instance not found");
        return { sshPrivateKey: Buffer.from("-----BEGIN FAKE KEY-----\n").toString("base64"), username: "runner", endpoint: "127.0.0.1" };
      }
      case "WaitInstanceSync": {
        const inst = instances.get(String(body.instanceId ?? ""));
        if (!inst) throw new ConnectFailure(404, "not_found", "instance not found");
        if (!LIVE.has(inst.status) && body.destroyedOk !== true)
          throw new ConnectFailure(400, "failed_precondition", "instance was destroyed");
        return omitDefaults({ metadata: metadata(inst) });
      }
      default:
        throw new ConnectFailure(404, "unimplemented", `${method} is not implemented`);
    }
  }

  function send(res: ServerResponse, status: number, payload: unknown): void {
    const text = JSON.stringify(payload);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString("utf8");
    const path = req.url ?? "";
    const method = path.startsWith(SERVICE_PREFIX) ? path.slice(SERVICE_PREFIX.length) : path;
    let body: unknown;
    try {
      body = rawBody ? JSON.parse(rawBody) : {};
    } catch {
      body = undefined;
    }
    const rec: RecordedComputeRequest = {
      method,
      path,
      headers: {
        authorization: req.headers.authorization,
        "content-type": req.headers["content-type"],
        "connect-protocol-version": req.headers["connect-protocol-version"] as string | undefined,
        "connect-timeout-ms": req.headers["connect-timeout-ms"] as string | undefined,
      },
      body,
      rawBody,
      status: 0,
      at: Date.now(),
    };
    requests.push(rec);
    const reply = (status: number, payload: unknown): void => {
      rec.status = status;
      send(res, status, payload);
    };

    if (knobs.htmlErrorNext !== undefined) {
      rec.status = knobs.htmlErrorNext;
      knobs.htmlErrorNext = undefined;
      res.writeHead(rec.status, { "content-type": "text/html" });
      res.end("<html><body>Bad Gateway</body></html>");
      return;
    }
    if (req.method !== "POST" || !path.startsWith(SERVICE_PREFIX)) {
      rec.status = 404;
      res.writeHead(404).end();
      return;
    }
    const ctype = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (ctype !== "application/json") {
      rec.status = 415;
      res.writeHead(415, { "accept-post": "application/json, application/proto" }).end();
      return;
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      reply(401, { code: "unauthenticated", message: "invalid or missing bearer token" });
      return;
    }
    if (body === undefined || typeof body !== "object" || body === null || Array.isArray(body)) {
      reply(400, { code: "invalid_argument", message: "request body is not a JSON object" });
      return;
    }
    const fail = knobs.failNext.find((f) => f.method === method && f.times > 0);
    if (fail) {
      fail.times -= 1;
      reply(fail.status, { code: fail.code, message: fail.message ?? `injected ${fail.code}` });
      return;
    }
    try {
      reply(200, await handle(method, body as Record<string, unknown>));
    } catch (err) {
      if (err instanceof ConnectFailure) reply(err.status, { code: err.code, message: err.message });
      else reply(500, { code: "internal", message: String(err) });
    }
  }

  const server = createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const api: FakeComputeApi = {
    url: `http://127.0.0.1:${port}`,
    token,
    requests,
    instances,
    knobs,
    setKnobs(k) {
      Object.assign(knobs, k);
    },
    calls(method) {
      return requests.filter((r) => r.method === method);
    },
    setStatus(id, status) {
      const inst = instances.get(id);
      if (!inst) throw new Error(`fake compute: no instance ${id}`);
      if (inst.nsc && backing && LIVE.has(inst.status) && !LIVE.has(status)) {
        execFileSync(backing.bin, ["__fake", "api-destroy", id, `test set ${status}`], {
          env: { ...process.env, ...backing.env },
          stdio: ["ignore", "pipe", "pipe"],
        });
      }
      inst.status = status;
      if (!LIVE.has(status) && !inst.destroyedAt) inst.destroyedAt = now().toISOString();
    },
    finish(id) {
      api.setStatus(id, "DESTROYED");
    },
    fail(id) {
      api.setStatus(id, "ERROR");
    },
    addInstance(partial) {
      const inst: FakeInstance = {
        instanceId: partial.instanceId ?? base32Id(),
        status: partial.status ?? "RUNNING",
        createdAt: partial.createdAt ?? now().toISOString(),
        deadline: partial.deadline,
        labels: partial.labels,
        shape: partial.shape ?? { virtualCpu: 6, memoryMegabytes: 14336, machineArch: "arm64", os: "macos", selectors: [] },
        request: partial.request ?? {},
      };
      instances.set(inst.instanceId, inst);
      return inst;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
  return api;
}
