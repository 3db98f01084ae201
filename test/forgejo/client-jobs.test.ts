import { describe, expect, it } from "vitest";
import { ForgejoApiError } from "../../src/forgejo/errors.js";
import { FAKE_ADMIN_TOKEN } from "../fakes/forgejo/index.js";
import { fakeForgejoPerTest } from "../helpers/fake-forgejo-per-test.js";
import { INSTANCE, ORG, REPO, USER, clientFor, rejection } from "./helpers.js";

const { start } = fakeForgejoPerTest();

describe("searchJobs on Forgejo", () => {
  it("reads the JSON null Forgejo sends for no jobs as an empty list", async () => {
    const f = await start({ version: "15.0.3" });
    const raw = await fetch(`${f.url}/api/v1/repos/acme/app/actions/runners/jobs`, {
      headers: { authorization: `token ${FAKE_ADMIN_TOKEN}` },
    });
    expect(await raw.text()).toBe("null");
    const { client } = clientFor(f);
    expect(await client.searchJobs(REPO)).toEqual([]);
    expect(await client.searchJobs(REPO, ["linux"])).toEqual([]);
  });

  it("applies the label rule: every runs_on label in the set; empty set = jobs without labels", async () => {
    const f = await start({ version: "14.0.0" });
    const { client } = clientFor(f);
    const linux = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const gpu = f.addJob({ repo: "acme/app", runs_on: ["linux", "gpu"] });
    const bare = f.addJob({ repo: "acme/app", runs_on: [] });
    const ids = async (labels?: string[]) => (await client.searchJobs(REPO, labels)).map((j) => j.id);
    expect(await ids()).toEqual([bare.id, gpu.id, linux.id]);
    expect(await ids(["linux"])).toEqual([linux.id]);
    expect(await ids(["gpu", "linux", "other"])).toEqual([gpu.id, linux.id]);
    expect(await ids(["Linux"])).toEqual([]);
    expect(await ids([])).toEqual([bare.id]);
    expect(f.callsTo("/actions/runners/jobs").map((c) => c.query)).toEqual([
      {},
      { labels: "linux" },
      { labels: "gpu,linux,other" },
      { labels: "Linux" },
      { labels: "" },
    ]);
  });

  it("returns waiting and running jobs only, with attempt and handle on 15 and run_id on 16", async () => {
    const f = await start({ version: "15.0.3" });
    const { client } = clientFor(f);
    const waiting = f.addJob({ repo: "acme/app", runs_on: ["linux"], name: "build" });
    const running = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    f.addJob({ repo: "acme/app", runs_on: ["linux"], status: "blocked" });
    const done = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    f.connectRunner({ registrationToken: f.registrationToken({ level: "instance" }), labels: ["linux"], handle: running.handle });
    f.connectRunner({ registrationToken: f.registrationToken({ level: "instance" }), labels: ["linux"], handle: done.handle });
    f.finishJob(done.id, "failure");

    const jobs = await client.searchJobs(REPO);
    expect(jobs.map((j) => [j.id, j.status])).toEqual([
      [running.id, "running"],
      [waiting.id, "waiting"],
    ]);
    expect(jobs[1]).toMatchObject({ name: "build", runs_on: ["linux"], attempt: 0, handle: waiting.handle, task_id: 0 });
    expect(jobs[0]).toMatchObject({ attempt: 1, handle: running.handle });
    expect(jobs[0]!.task_id).toBeGreaterThan(0);
    expect(jobs[1]!.run_id).toBeUndefined();

    f.setVersion("16.0.0");
    await client.serverInfo();
    expect((await client.searchJobs(REPO))[1]).toMatchObject({ run_id: waiting.runId, handle: waiting.handle });
  });

  it.each([
    ["11.0.0", "/api/v1/admin/runners/jobs"],
    ["14.0.0", "/api/v1/admin/runners/jobs"],
    ["15.0.3", "/api/v1/admin/actions/runners/jobs"],
  ])("uses the instance path of Forgejo %s", async (version, path) => {
    const f = await start({ version });
    const { client } = clientFor(f);
    const job = f.addJob({ repo: "other/thing", runs_on: ["linux"] });
    expect((await client.searchJobs(INSTANCE, ["linux"])).map((j) => j.id)).toEqual([job.id]);
    expect(f.callsTo("/jobs").map((c) => c.path)).toEqual([path]);
  });

  it("scopes jobs: org and user see their own repositories only", async () => {
    const f = await start({ version: "15.0.3" });
    const { client } = clientFor(f);
    const acme = f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const mine = f.addJob({ repo: "admin/dotfiles", runs_on: ["linux"] });
    f.addJob({ repo: "else/where", runs_on: ["linux"] });
    expect((await client.searchJobs(ORG)).map((j) => j.id)).toEqual([acme.id]);
    expect((await client.searchJobs(USER)).map((j) => j.id)).toEqual([mine.id]);
    expect((await client.searchJobs(INSTANCE)).length).toBe(3);
  });

  it("on Forgejo 11–13 refuses a search without labels instead of silently seeing nothing", async () => {
    const f = await start({ version: "13.0.2" });
    const { client } = clientFor(f);
    const job = f.addJob({ repo: "acme/app", runs_on: ["docker"] });
    const err = await rejection(client.searchJobs(REPO));
    expect(err).toBeInstanceOf(ForgejoApiError);
    expect((err as ForgejoApiError).kind).toBe("unsupported");
    expect(err.message).toMatch(/repo:acme\/app.*Forgejo 13\.0\.2 returns no jobs when no labels are given.*pass the labels/);
    expect(f.callsTo("/jobs")).toHaveLength(0);
    // The fake really does return nothing without labels on 13 (what the client protects against).
    const raw = await fetch(`${f.url}/api/v1/repos/acme/app/actions/runners/jobs`, {
      headers: { authorization: `token ${FAKE_ADMIN_TOKEN}` },
    });
    expect(await raw.text()).toBe("null");
    expect((await client.searchJobs(REPO, ["docker"])).map((j) => j.id)).toEqual([job.id]);
  });

  it("on Forgejo 10 says there is no jobs API", async () => {
    const f = await start({ version: "10.0.0" });
    const { client } = clientFor(f);
    const err = (await rejection(client.searchJobs(REPO, ["linux"]))) as ForgejoApiError;
    expect(err.kind).toBe("unsupported");
    expect(err.isTransient).toBe(false);
    expect(err.message).toContain("Forgejo 10.0.0 has no jobs API (it arrived in Forgejo 11)");
  });

  it("asks for the version once and again only after the cache time", async () => {
    let now = 1_000_000;
    const f = await start({ version: "15.0.3" });
    const { client } = clientFor(f, { now: () => now, versionTtlMs: 60_000 });
    await client.searchJobs(REPO);
    await client.searchJobs(REPO);
    expect(f.callsTo("/version")).toHaveLength(1);
    now += 61_000;
    f.setVersion("13.0.0");
    await expect(client.searchJobs(REPO)).rejects.toThrow(/Forgejo 13\.0\.0 returns no jobs/);
    expect(f.callsTo("/version")).toHaveLength(2);
  });
});

describe("searchJobs on Gitea 1.24", () => {
  it("reads {jobs,total_count}, maps queued/in_progress to waiting/running and skips blocked ones", async () => {
    const f = await start({ kind: "gitea" });
    const { client } = clientFor(f);
    const queued = f.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    const running = f.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    const blocked = f.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"], status: "blocked" });
    const done = f.addJob({ repo: "acme/app", runs_on: ["ubuntu-latest"] });
    const runner = f.connectRunner({ registrationToken: f.registrationToken({ level: "instance" }), labels: ["ubuntu-latest"] }).runner;
    expect(runner.currentJobId).toBe(queued.id);
    f.finishJob(queued.id);
    f.fetchTask(runner.uuid);
    f.finishJob(running.id);
    f.rerunJob(running.id);
    f.fetchTask(runner.uuid);
    // Now: running.id is running (attempt 2), done.id is queued, blocked is blocked, queued.id is done.
    const jobs = await client.searchJobs(REPO);
    expect(jobs.map((j) => [j.id, j.status])).toEqual([
      [done.id, "waiting"],
      [running.id, "running"],
    ]);
    expect(jobs[1]).toMatchObject({ runs_on: ["ubuntu-latest"], attempt: 2, run_id: running.runId });
    expect(jobs.find((j) => j.id === blocked.id)).toBeUndefined();
    const call = f.callsTo("/repos/acme/app/actions/jobs")[0]!;
    expect(call.query).toEqual({ status: ["queued", "in_progress"], page: "1", limit: "50" });
  });

  it("applies the label rule itself (Gitea has no label filter) and pages by total_count", async () => {
    const f = await start({ kind: "gitea" });
    const { client } = clientFor(f);
    for (let i = 0; i < 55; i++) f.addJob({ repo: "acme/app", runs_on: ["linux"] });
    const gpu = f.addJob({ repo: "acme/app", runs_on: ["linux", "gpu"] });
    expect(await client.searchJobs(ORG)).toHaveLength(56);
    expect((await client.searchJobs(ORG, ["gpu", "linux"])).length).toBe(56);
    expect((await client.searchJobs(ORG, ["linux"])).map((j) => j.id)).not.toContain(gpu.id);
    expect((await client.searchJobs(ORG, ["linux"])).length).toBe(55);
    expect(f.callsTo("/orgs/acme/actions/jobs").map((c) => c.query.page)).toEqual(["1", "2", "1", "2", "1", "2", "1", "2"]);
  });
});
