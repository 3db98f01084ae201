import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ComputeApi } from "../../src/namespace/compute-api.js";
import type { ComputeApiError } from "../../src/namespace/compute-api.js";
import type { CreateInstanceRequest } from "../../src/namespace/compute-types.js";
import { createFakeComputeApi } from "../fakes/compute-api/index.js";
import type { FakeComputeApi } from "../fakes/compute-api/index.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { tempDir } from "../helpers/tmp.js";

/**
 * The fake Compute API backed by the fake nsc: one world in which a Linux container instance made
 * through CreateInstance is an instance nsc sees, and either side ending it ends it for both.
 */

let tmp: ReturnType<typeof tempDir>;
let nsc: FakeNsc;
let fake: FakeComputeApi;
let api: ComputeApi;

beforeEach(async () => {
  tmp = tempDir("fnsc-fake-api-nsc-");
  nsc = createFakeNsc(join(tmp.dir, "nsc"));
  fake = await createFakeComputeApi({ nsc, region: "ord4" });
  const tokenFile = join(tmp.dir, "token.json");
  writeFileSync(tokenFile, JSON.stringify({ bearer_token: fake.token }));
  api = new ComputeApi({ baseUrl: fake.url, tokenFile });
});
afterEach(async () => {
  nsc.destroyAll();
  await fake.close();
  tmp.cleanup();
});

function linuxCreate(container: Record<string, unknown> = {}): CreateInstanceRequest {
  return {
    shape: { virtualCpu: 2, memoryMegabytes: 4096, machineArch: "amd64", os: "linux" },
    labels: [{ name: "t", value: "1" }],
    deadline: new Date(Date.now() + 600_000).toISOString(),
    containers: [
      { name: "c", imageRef: "img", args: ["/bin/sh", "-c", "true"], environment: { K: 'v=1,"2"' }, workloadType: "JOB", ...container },
    ],
  };
}

const nscJson = async (...args: string[]) =>
  JSON.parse((await execa(nsc.bin, ["--region", "ord4", ...args], { env: nsc.env })).stdout) as unknown;

describe("fake Compute API backed by the fake nsc", () => {
  it("makes Linux containers in nsc's state; DestroyInstance ends them there, and nsc destroy ends them for the API", async () => {
    const a = (await api.createInstance(linuxCreate())).metadata.instanceId;
    const b = (await api.createInstance(linuxCreate())).metadata.instanceId;
    const listed = (await nscJson("list", "--all", "-o", "json", "--label", "t=1")) as {
      cluster_id: string;
      labels: Record<string, string>;
    }[];
    expect(listed.map((i) => i.cluster_id).sort()).toEqual([a, b].sort());
    const inst = nsc.instances().find((i) => i.id === a)!;
    expect(inst).toMatchObject({
      kind: "run",
      created_by: "compute-api",
      image: "img",
      args: ["/bin/sh", "-c", "true"],
      env: { K: 'v=1,"2"' },
      user: null,
    });
    // Every request is recorded, body and all.
    expect(fake.calls("CreateInstance").map((r) => (r.body as CreateInstanceRequest).containers![0]!.imageRef)).toEqual(["img", "img"]);

    await api.destroyInstance(a, "done");
    expect(nsc.instances({ includeDestroyed: true }).find((i) => i.id === a)!.destroy_reason).toBe("DestroyInstance: done");
    await execa(nsc.bin, ["--region", "ord4", "destroy", "--force", b], { env: nsc.env });
    expect((await api.describeInstance(b)).metadata.status).toBe("DESTROYED");
    expect(await api.listInstances({ t: "1" })).toEqual([]);
  });

  it("ignores a field the API does not have (a container user, as connect-go's JSON codec does) and refuses malformed containers", async () => {
    const id = (await api.createInstance(linuxCreate({ user: "root" }))).metadata.instanceId;
    expect(nsc.instances().find((i) => i.id === id)!.user).toBeNull();
    const refused = async (req: CreateInstanceRequest) =>
      ((await api.createInstance(req).catch((e: unknown) => e)) as ComputeApiError).serverMessage;
    expect(await refused(linuxCreate({ imageRef: "" }))).toContain("image_ref is required");
    expect(
      await refused({ ...linuxCreate(), shape: { virtualCpu: 6, memoryMegabytes: 14336, machineArch: "arm64", os: "macos" } }),
    ).toContain("containers are only supported on linux");
    expect(await refused(linuxCreate({ workloadType: "BATCH" }))).toContain("unknown workload type");
    expect(nsc.instances()).toHaveLength(1);
  });
});
