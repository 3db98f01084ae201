import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A fake Namespace Compute API (contracts/nsc.md §11, §13.10): Connect with JSON over HTTP/1.1 on
 * 127.0.0.1. It checks the bearer token and the content type, validates macOS creates the way the
 * real service is observed to, omits default-valued fields and sends int64 values as strings in
 * its answers, walks instances through CREATING → RUNNING → DESTROYED / ERROR under test control,
 * and records every request.
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

export async function createFakeComputeApi(opts: { token?: string; now?: () => Date } = {}): Promise<FakeComputeApi> {
  const token = opts.token ?? `nsrt_fake_${randomBytes(8).toString("hex")}`;
  const now = opts.now ?? (() => new Date());
  const requests: RecordedComputeRequest[] = [];
  const instances = new Map<string, FakeInstance>();
  const knobs: ComputeKnobs = { capacity: false, failNext: [], initialStatus: "CREATING", forgetDestroyed: false, pageSize: 100, htmlErrorNext: undefined };

  function expire(): void {
    const t = now().getTime();
    for (const inst of instances.values()) {
      if (LIVE.has(inst.status) && inst.deadline && Date.parse(inst.deadline) <= t) {
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
    });
  }

  function validateCreate(body: Record<string, unknown>): FakeInstance {
    const shape = (body.shape ?? {}) as Record<string, unknown>;
    const os = String(shape.os ?? "");
    const apps = Array.isArray(body.applications) ? (body.applications as Record<string, unknown>[]) : [];
    const experimental = (body.experimental ?? {}) as Record<string, unknown>;
    const selectors = Array.isArray(shape.selectors) ? (shape.selectors as { name?: string; value?: string }[]) : [];
    if (apps.length > 0 && os !== "macos") throw new ConnectFailure(400, "invalid_argument", `applications are only supported on macos (shape.os is "${os}")`);
    const cpu = asNumber(shape.virtualCpu);
    const mem = asNumber(shape.memoryMegabytes);
    if (cpu === undefined || cpu <= 0 || mem === undefined || mem <= 0) throw new ConnectFailure(400, "invalid_argument", "shape needs virtual_cpu and memory_megabytes");
    if (os === "macos") {
      if (shape.machineArch !== "arm64") throw new ConnectFailure(400, "invalid_argument", `macos requires machine_arch arm64`);
      if (!MACOS_VCPUS.includes(cpu)) throw new ConnectFailure(400, "invalid_argument", `unsupported virtual_cpu ${String(shape.virtualCpu)} for macos`);
      if (!MACOS_MEMORY_MB.includes(mem)) throw new ConnectFailure(400, "invalid_argument", `unsupported memory_megabytes ${String(shape.memoryMegabytes)} for macos`);
      if (selectors.length === 0 && !experimental.macosBaseImageId) {
        throw new ConnectFailure(400, "invalid_argument", "macos instances must select a base image");
      }
    }
    for (const s of selectors) {
      if (!s.name || !s.value) throw new ConnectFailure(400, "invalid_argument", "selector needs name and value");
    }
    for (const app of apps) {
      if (typeof app.command !== "string" || !app.command) throw new ConnectFailure(400, "invalid_argument", "application command is required");
      if (app.workloadType !== undefined && app.workloadType !== "JOB" && app.workloadType !== 1) {
        throw new ConnectFailure(400, "invalid_argument", `unknown workload type ${String(app.workloadType)}`);
      }
    }
    const volumes = Array.isArray(body.volumes) ? (body.volumes as Record<string, unknown>[]) : [];
    for (const v of volumes) {
      if (!v.tag || !v.mountPoint) throw new ConnectFailure(400, "invalid_argument", "volume needs tag and mount_point");
      if (!["CACHE", "PERSISTENT", 1, 2].includes(v.persistencyKind as string | number)) throw new ConnectFailure(400, "invalid_argument", "volume needs persistency_kind");
      if (v.sizeMb !== undefined && asNumber(v.sizeMb) === undefined) throw new ConnectFailure(400, "invalid_argument", "size_mb must be an integer");
    }
    const deadline = typeof body.deadline === "string" ? body.deadline : undefined;
    if (deadline !== undefined && Number.isNaN(Date.parse(deadline))) throw new ConnectFailure(400, "invalid_argument", "deadline is not RFC 3339");
    const labels = Array.isArray(body.labels) ? (body.labels as { name?: string; value?: string }[]).map((l) => ({ name: l.name ?? "", value: l.value ?? "" })) : [];
    return {
      instanceId: base32Id(),
      status: knobs.initialStatus,
      createdAt: now().toISOString(),
      deadline,
      documentedPurpose: typeof body.documentedPurpose === "string" ? body.documentedPurpose : undefined,
      labels,
      shape: { virtualCpu: cpu, memoryMegabytes: mem, machineArch: String(shape.machineArch ?? "amd64"), os: os || "linux", selectors: selectors.map((s) => ({ name: s.name ?? "", value: s.value ?? "" })) },
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

  function handle(method: string, body: Record<string, unknown>): unknown {
    expire();
    switch (method) {
      case "CreateInstance": {
        if (knobs.capacity === true || (typeof knobs.capacity === "number" && knobs.capacity > 0)) {
          if (typeof knobs.capacity === "number") knobs.capacity -= 1;
          throw new ConnectFailure(429, "resource_exhausted", "workspace ran out of macos capacity");
        }
        const inst = validateCreate(body);
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
        const offset = typeof body.paginationCursor === "string" && body.paginationCursor ? Number(Buffer.from(body.paginationCursor, "base64").toString("utf8")) : 0;
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
        if (!LIVE.has(inst.status) && body.destroyedOk !== true) throw new ConnectFailure(400, "failed_precondition", "instance was destroyed");
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
      reply(200, handle(method, body as Record<string, unknown>));
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
