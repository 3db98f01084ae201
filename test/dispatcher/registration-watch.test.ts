import { afterEach, describe, expect, it } from "vitest";
import { RegistrationWatch } from "../../src/dispatcher/registration-watch.js";
import type { Platform, RunnerRecord } from "../../src/store/types.js";
import type { DecisionKit } from "./decision-kit.js";
import { startDecisionKit } from "./decision-kit.js";

/**
 * Which running runners Forgejo says are done (their ephemeral registration is gone): the only
 * end-of-job signal for Windows and macOS instances, so it must never fire on one look.
 */
let k: DecisionKit | undefined;
afterEach(async () => {
  await k?.close();
  k = undefined;
});

const repo = (name: string) => ({ level: "repository" as const, owner: "acme", name });

async function kit(version?: string): Promise<DecisionKit> {
  k = await startDecisionKit({
    forgejo: {
      version,
      repos: [
        { owner: "acme", name: "one" },
        { owner: "acme", name: "two" },
      ],
    },
  });
  return k;
}

/** A running, ephemeral runner of `platform` with a registration at the fake. */
async function watched(k: DecisionKit, name: string, platform: Platform = "windows", scope = repo("one")) {
  const reg = k.registration(name, scope);
  await k.runner(name, "running", {
    platform,
    scope,
    instanceId: `i-${name}`,
    expiresAt: "2027-01-01T00:00:00.000Z",
    registration: "ephemeral",
    forgejoRunnerId: reg.id,
  });
  return reg;
}

const live = async (k: DecisionKit) => k.store.listRunners({ states: ["running"] });
const logLine = (k: DecisionKit, msg: string) =>
  JSON.parse(
    k
      .logs()
      .split("\n")
      .find((l) => l.includes(`"msg":"${msg}"`)) ?? "null",
  ) as Record<string, unknown>;

describe("RegistrationWatch", () => {
  it("reports a runner after two listings without its registration and a GET that answers 404", async () => {
    const k = await kit();
    const w = new RegistrationWatch(k.ctx);
    const reg = await watched(k, "nscloud-w");
    expect(await w.consumed(await live(k))).toEqual(new Set());
    k.forgejo.world.deleteRunner(reg);
    expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(k.forgejo.callsTo(`/actions/runners/${reg.id}`, "GET")).toHaveLength(0);
    expect(await w.consumed(await live(k))).toEqual(new Set(["nscloud-w"]));
    expect(k.forgejo.callsTo(`/actions/runners/${reg.id}`, "GET")).toHaveLength(1);
  });

  it("forgets a miss when the registration shows up again", async () => {
    const k = await kit();
    const w = new RegistrationWatch(k.ctx);
    const reg = await watched(k, "nscloud-w");
    // The listing skips it once (paged while others come and go), then shows it, then skips it again.
    k.forgejo.world.deleteRunner(reg);
    await w.consumed(await live(k));
    reg.deleted = false;
    await w.consumed(await live(k));
    reg.deleted = true;
    expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(await w.consumed(await live(k))).toEqual(new Set(["nscloud-w"]));
  });

  it("trusts the GET over the listing: a registration the GET finds is not consumed, and the misses start over", async () => {
    const k = await kit();
    const w = new RegistrationWatch(k.ctx);
    const reg = await watched(k, "nscloud-w");
    // Two listings miss it, but it still exists.
    for (let i = 0; i < 2; i++) k.forgejo.failNext("/actions/runners", 200, 1, { method: "GET", body: [] });
    await w.consumed(await live(k));
    expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(k.forgejo.callsTo(`/actions/runners/${reg.id}`, "GET")).toHaveLength(1);
    k.forgejo.world.deleteRunner(reg);
    expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(await w.consumed(await live(k))).toEqual(new Set(["nscloud-w"]));
  });

  it("asks again on the next tick when the GET fails", async () => {
    const k = await kit();
    const w = new RegistrationWatch(k.ctx);
    const reg = await watched(k, "nscloud-w");
    k.forgejo.world.deleteRunner(reg);
    await w.consumed(await live(k));
    k.forgejo.failNext(`/actions/runners/${reg.id}`, 500, 1, { method: "GET" });
    expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(logLine(k, "could not confirm the registration is gone; not judged this tick")).toMatchObject({
      runner: "nscloud-w",
      err: expect.stringContaining("500"),
    });
    expect(await w.consumed(await live(k))).toEqual(new Set(["nscloud-w"]));
  });

  it("judges nothing on a failed listing", async () => {
    const k = await kit();
    const w = new RegistrationWatch(k.ctx);
    const reg = await watched(k, "nscloud-w");
    k.forgejo.world.deleteRunner(reg);
    k.forgejo.failNext(/\/actions\/runners$/, 500, 3, { method: "GET" });
    for (let i = 0; i < 3; i++) expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(logLine(k, "could not list Forgejo runners; registrations not judged this tick")).toMatchObject({
      scope: "repo:acme/one",
      err: expect.stringContaining("500"),
    });
    expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(await w.consumed(await live(k))).toEqual(new Set(["nscloud-w"]));
  });

  it("watches only running ephemeral Windows and macOS runners with a registration id", async () => {
    const k = await kit();
    const w = new RegistrationWatch(k.ctx);
    const mac = await watched(k, "nscloud-mac", "macos");
    const lin = await watched(k, "nscloud-lin", "linux");
    await k.runner("nscloud-tok", "running", {
      platform: "windows",
      scope: repo("one"),
      instanceId: "it",
      expiresAt: "2027-01-01T00:00:00.000Z",
      registration: "token",
      forgejoRunnerId: 999,
    });
    await k.runner("nscloud-noid", "running", {
      platform: "windows",
      scope: repo("one"),
      instanceId: "in",
      expiresAt: "2027-01-01T00:00:00.000Z",
      registration: "ephemeral",
    });
    const launching = k.registration("nscloud-launch", repo("one"));
    await k.runner("nscloud-launch", "launching", {
      platform: "windows",
      scope: repo("one"),
      registration: "ephemeral",
      forgejoRunnerId: launching.id,
    });
    for (const r of [mac, lin, launching]) k.forgejo.world.deleteRunner(r);
    const all = await k.store.listRunners({ states: ["launching", "running"] });
    await w.consumed(all);
    expect(await w.consumed(all)).toEqual(new Set(["nscloud-mac"]));
    expect(k.forgejo.callsTo(/\/actions\/runners\/\d+$/, "GET").map((c) => c.path)).toEqual([
      `/api/v1/repos/acme/one/actions/runners/${mac.id}`,
    ]);
  });

  it("costs no Forgejo call when nothing is watched, and none beyond the version on servers without the runners API", async () => {
    const k = await kit();
    await watched(k, "nscloud-lin", "linux");
    expect(await new RegistrationWatch(k.ctx).consumed(await live(k))).toEqual(new Set());
    expect(k.forgejo.calls).toEqual([]);
    await k.close();

    const old = await kit("14.0.0");
    const reg = old.registration("nscloud-w", repo("one"));
    old.forgejo.world.deleteRunner(reg);
    await old.runner("nscloud-w", "running", {
      platform: "windows",
      scope: repo("one"),
      instanceId: "iw",
      expiresAt: "2027-01-01T00:00:00.000Z",
      registration: "ephemeral",
      forgejoRunnerId: reg.id,
    });
    const w = new RegistrationWatch(old.ctx);
    for (let i = 0; i < 3; i++) expect(await w.consumed(await live(old))).toEqual(new Set());
    expect(old.forgejo.callsTo("/actions/runners")).toEqual([]);
  });

  it("judges nothing while the server version cannot be read", async () => {
    const k = await kit();
    const reg = await watched(k, "nscloud-w");
    k.forgejo.world.deleteRunner(reg);
    k.forgejo.failNext("/version", 500, 10);
    const w = new RegistrationWatch(k.ctx);
    for (let i = 0; i < 3; i++) expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(k.forgejo.callsTo("/actions/runners")).toEqual([]);
  });

  it("lists each scope once per tick, however many runners it holds", async () => {
    const k = await kit();
    await watched(k, "nscloud-a", "windows", repo("one"));
    await watched(k, "nscloud-b", "windows", repo("one"));
    await watched(k, "nscloud-c", "macos", repo("two"));
    await new RegistrationWatch(k.ctx).consumed(await live(k));
    expect(
      k.forgejo
        .callsTo(/\/actions\/runners$/, "GET")
        .map((c) => c.path)
        .sort(),
    ).toEqual(["/api/v1/repos/acme/one/actions/runners", "/api/v1/repos/acme/two/actions/runners"]);
  });

  it("forgets the misses of a runner it no longer watches", async () => {
    const k = await kit();
    const w = new RegistrationWatch(k.ctx);
    const reg = await watched(k, "nscloud-w");
    k.forgejo.world.deleteRunner(reg);
    await w.consumed(await live(k));
    // One tick without the runner (another runner keeps the watch busy) ...
    const other = await watched(k, "nscloud-o");
    const withoutW = (await live(k)).filter((r: RunnerRecord) => r.name !== "nscloud-w");
    await w.consumed(withoutW);
    // ... so its earlier miss no longer counts.
    expect(await w.consumed(await live(k))).toEqual(new Set());
    expect(await w.consumed(await live(k))).toEqual(new Set(["nscloud-w"]));
    expect(other.deleted).toBe(false);
  });
});
