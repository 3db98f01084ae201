import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { request } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Metrics } from "../../src/http/metrics.js";
import { ComputeApi, ComputeApiError, computeBaseUrl, readBearerToken } from "../../src/namespace/compute-api.js";
import { describeInstanceResponseSchema, listInstancesResponseSchema } from "../../src/namespace/compute-types.js";
import type { CreateInstanceRequest } from "../../src/namespace/compute-types.js";
import { createFakeComputeApi } from "../fakes/compute-api/index.js";
import type { FakeComputeApi } from "../fakes/compute-api/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";

let fake: FakeComputeApi;
let tmp: ReturnType<typeof tempDir>;
let tokenFile: string;

beforeEach(async () => {
  fake = await createFakeComputeApi();
  tmp = tempDir();
  tokenFile = join(tmp.dir, "token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: fake.token }));
});
afterEach(async () => {
  await fake.close();
  tmp.cleanup();
});

function macCreate(labels: Record<string, string> = { "forgejo-nsc.runner": "r1" }): CreateInstanceRequest {
  return {
    shape: {
      virtualCpu: 6,
      memoryMegabytes: 14336,
      machineArch: "arm64",
      os: "macos",
      selectors: [{ name: "macos.version", value: "15.x" }],
    },
    labels: Object.entries(labels).map(([name, value]) => ({ name, value })),
    deadline: new Date(Date.now() + 3_600_000).toISOString(),
    applications: [{ name: "forgejo-runner", command: "/bin/bash", args: ["-lc", "true"], environment: { A: "1" }, workloadType: "JOB" }],
  };
}

describe("ComputeApi", () => {
  it("sends Connect JSON with the bearer token and parses the created instance", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const api = new ComputeApi({ baseUrl: `${fake.url}/`, tokenFile, metrics });
    const sent = macCreate();
    const res = await api.createInstance(sent);
    expect(res.metadata.status).toBe("CREATING");
    expect(res.metadata.instanceId).toMatch(/^[0-9a-v]{13}$/);
    expect(res.metadata.labels).toEqual([{ name: "forgejo-nsc.runner", value: "r1" }]);
    expect(Object.keys(res).sort()).toEqual(["instanceUrl", "metadata"]);

    const [req] = fake.calls("CreateInstance");
    expect(req!.path).toBe("/namespace.cloud.compute.v1beta.ComputeService/CreateInstance");
    expect(req!.headers).toMatchObject({
      authorization: `Bearer ${fake.token}`,
      "content-type": "application/json",
      "connect-protocol-version": "1",
      "connect-timeout-ms": "30000",
    });
    expect(req!.body).toEqual(JSON.parse(JSON.stringify(sent)));
    const counted = await metrics.registry.getSingleMetricAsString("forgejo_nsc_namespace_calls_total");
    expect(counted).toContain('api="compute",command="CreateInstance",outcome="ok"} 1');
  });

  it("reads the token file on every call, so a rotated token is used at once", async () => {
    const api = new ComputeApi({ baseUrl: fake.url, tokenFile });
    writeFileSync(tokenFile, JSON.stringify({ bearer_token: "nsrt_old_revoked" }));
    const err = (await api.listInstances({}).catch((e: unknown) => e)) as ComputeApiError;
    expect(err).toBeInstanceOf(ComputeApiError);
    expect(err.code).toBe("unauthenticated");
    expect(err.message).toContain("namespace.token_file");
    expect(err.message).not.toContain("nsrt_old_revoked");
    writeFileSync(tokenFile, JSON.stringify({ bearer_token: fake.token }));
    await expect(api.listInstances({})).resolves.toEqual([]);
  });

  it("switches on the Connect code, not the HTTP status", async () => {
    const api = new ComputeApi({ baseUrl: fake.url, tokenFile });
    fake.setKnobs({ capacity: 1 });
    const capacity = (await api.createInstance(macCreate()).catch((e: unknown) => e)) as ComputeApiError;
    expect(capacity.code).toBe("resource_exhausted");
    expect(capacity.httpStatus).toBe(429);
    expect(capacity.message).toMatch(/capacity.*smaller namespace\.macos_machine_type/);

    const invalid = (await api
      .createInstance({ ...macCreate(), shape: { ...macCreate().shape, virtualCpu: 5 } })
      .catch((e: unknown) => e)) as ComputeApiError;
    expect(invalid.code).toBe("invalid_argument");
    expect(invalid.serverMessage).toContain("virtual_cpu");

    fake.setKnobs({ failNext: [{ method: "DescribeInstance", code: "failed_precondition", status: 400, times: 1 }] });
    const precondition = (await api.describeInstance("x").catch((e: unknown) => e)) as ComputeApiError;
    expect(precondition.code).toBe("failed_precondition");

    // A proxy error page has no Connect body: Connect's HTTP-status mapping applies.
    fake.setKnobs({ htmlErrorNext: 502 });
    const proxy = (await api.describeInstance("x").catch((e: unknown) => e)) as ComputeApiError;
    expect(proxy.code).toBe("unavailable");
    expect(proxy.httpStatus).toBe(502);
  });

  it("treats not_found on destroy as already destroyed, and reports it on describe", async () => {
    const api = new ComputeApi({ baseUrl: fake.url, tokenFile });
    const created = await api.createInstance(macCreate());
    const id = created.metadata.instanceId;
    await expect(api.destroyInstance(id, "test")).resolves.toEqual({ alreadyGone: false });
    expect(fake.instances.get(id)!.destroyReason).toBe("test");
    await expect(api.destroyInstance(id)).resolves.toEqual({ alreadyGone: true });
    const described = await api.describeInstance(id);
    expect(described.metadata.status).toBe("DESTROYED");
    expect(described.metadata.destroyedAt).toBeTruthy();
    const missing = (await api.describeInstance("nosuchinstance").catch((e: unknown) => e)) as ComputeApiError;
    expect(missing.code).toBe("not_found");
  });

  it("lists by label with EQUAL filters across pages and only live instances", async () => {
    const api = new ComputeApi({ baseUrl: fake.url, tokenFile });
    fake.setKnobs({ pageSize: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await api.createInstance(macCreate({ "forgejo-nsc.owner": "d1", "forgejo-nsc.runner": `r${i}` }))).metadata.instanceId);
    await api.createInstance(macCreate({ "forgejo-nsc.owner": "other", "forgejo-nsc.runner": "x" }));
    fake.finish(ids[4]!);
    const listed = await api.listInstances({ "forgejo-nsc.owner": "d1" });
    expect(listed.map((i) => i.instanceId).sort()).toEqual(ids.slice(0, 4).sort());
    const lists = fake.calls("ListInstances");
    expect(lists).toHaveLength(2);
    expect(lists[0]!.body).toEqual({ labelFilter: [{ name: "forgejo-nsc.owner", value: "d1", op: "EQUAL" }] });
    expect((lists[1]!.body as { paginationCursor?: string }).paginationCursor).toBeTruthy();
    const withDone = await api.listInstances({ "forgejo-nsc.owner": "d1" }, { includeCompleteRuns: true });
    expect(withDone).toHaveLength(5);
  });

  it("times out a call that gets no answer", async () => {
    const hang = createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
    try {
      const api = new ComputeApi({ baseUrl: `http://127.0.0.1:${(hang.address() as AddressInfo).port}`, tokenFile, timeoutMs: 200 });
      const err = (await api.describeInstance("x").catch((e: unknown) => e)) as ComputeApiError;
      expect(err.code).toBe("timeout");
    } finally {
      hang.closeAllConnections();
      hang.close();
    }
  });

  it("reports an unreachable endpoint as a network error", async () => {
    const hang = createServer();
    await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
    const port = (hang.address() as AddressInfo).port;
    await new Promise<void>((r) => hang.close(() => r()));
    const api = new ComputeApi({ baseUrl: `http://127.0.0.1:${port}`, tokenFile });
    const err = (await api.listInstances({}).catch((e: unknown) => e)) as ComputeApiError;
    expect(err.code).toBe("network");
    expect(err.message).toContain("ECONNREFUSED");
  });

  it("never logs the bearer token", async () => {
    const log = captureLogger("trace");
    const api = new ComputeApi({ baseUrl: fake.url, tokenFile, logger: log.logger });
    await api.createInstance(macCreate());
    await api.describeInstance("missing").catch(() => undefined);
    expect(log.lines.length).toBeGreaterThan(0);
    expect(log.text()).not.toContain(fake.token);
  });
});

describe("the fake Compute API itself", () => {
  it("answers 415 to a request that is not application/json", async () => {
    const res = await request(`${fake.url}/namespace.cloud.compute.v1beta.ComputeService/ListInstances`, {
      method: "POST",
      headers: { authorization: `Bearer ${fake.token}`, "content-type": "application/proto" },
      body: "{}",
    });
    await res.body.text();
    expect(res.statusCode).toBe(415);
  });
});

describe("readBearerToken", () => {
  it("accepts bearer_token (and legacy tenant_token) and refuses the rest with advice", async () => {
    const f = join(tmp.dir, "t.json");
    writeFileSync(f, JSON.stringify({ bearer_token: " nsrt_abc \n" }));
    await expect(readBearerToken(f)).resolves.toBe("nsrt_abc");
    writeFileSync(f, JSON.stringify({ tenant_token: "jwt" }));
    await expect(readBearerToken(f)).resolves.toBe("jwt");
    writeFileSync(f, JSON.stringify({ session_token: "sess_secret" }));
    await expect(readBearerToken(f)).rejects.toThrow(/session_token.*bearer_token/);
    writeFileSync(f, "nsrt_raw_secret");
    const raw = (await readBearerToken(f).catch((e: unknown) => e)) as Error;
    expect(raw.message).toMatch(/not JSON; wrap a raw token/);
    expect(raw.message).not.toContain("nsrt_raw_secret");
    await expect(readBearerToken(join(tmp.dir, "missing.json"))).rejects.toThrow(/cannot read .*ENOENT/);
    await expect(readBearerToken(undefined)).rejects.toThrow(/set namespace.token_file/);
  });
});

describe("computeBaseUrl", () => {
  it("prefers compute_base_url, then region, then NSC_ENDPOINT, then us", () => {
    expect(computeBaseUrl({ compute_base_url: "http://127.0.0.1:9/", region: "eu" }, {})).toBe("http://127.0.0.1:9");
    expect(computeBaseUrl({ region: "ord4" }, { NSC_ENDPOINT: "https://x" })).toBe("https://ord4.compute.namespaceapis.com");
    expect(computeBaseUrl({}, { NSC_ENDPOINT: "https://eu.compute.namespaceapis.com" })).toBe("https://eu.compute.namespaceapis.com");
    expect(computeBaseUrl({}, {})).toBe("https://us.compute.namespaceapis.com");
  });
});

describe("proto3 JSON parsing", () => {
  it("reads int64 strings, omitted defaults and unknown fields", () => {
    const d = describeInstanceResponseSchema.parse({
      metadata: { instanceId: "abc", shape: { virtualCpu: "12", memoryMegabytes: "28672", os: "macos" }, futureField: 1 },
    });
    expect(d.metadata.status).toBe("STATUS_UNKNOWN");
    expect(d.metadata.labels).toEqual([]);
    expect(d.metadata.shape).toEqual({ virtualCpu: 12, memoryMegabytes: 28672, os: "macos", selectors: [] });
    expect(listInstancesResponseSchema.parse({})).toEqual({ instances: [] });
    expect(describeInstanceResponseSchema.safeParse({ metadata: { instanceId: "a", shape: { virtualCpu: "many" } } }).success).toBe(false);
    expect(describeInstanceResponseSchema.parse({ metadata: { instanceId: "a", labels: [{ name: "k" }] } }).metadata.labels).toEqual([
      { name: "k", value: "" },
    ]);
  });
});
