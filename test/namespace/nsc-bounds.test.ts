import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Metrics } from "../../src/http/metrics.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import { NscError } from "../../src/namespace/nsc-errors.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { tempDir } from "../helpers/tmp.js";
import { waitFor } from "../helpers/wait.js";

// Every nsc answer is checked against a schema and read up to a size limit; every call ends
// within its time limit, together with whatever it started.

let tmp: { dir: string; cleanup: () => void };
let fake: FakeNsc;
let metrics: Metrics;

beforeEach(() => {
  tmp = tempDir("fnsc-bounds-");
  fake = createFakeNsc(join(tmp.dir, "nsc"));
  metrics = new Metrics({ defaultMetrics: false });
  writeFileSync(join(tmp.dir, "token.json"), JSON.stringify({ bearer_token: "nsrt_testtoken" }));
});
afterEach(() => tmp.cleanup());

function cli(over: Partial<ConstructorParameters<typeof NscCli>[0]> = {}): NscCli {
  return new NscCli({
    binary: fake.bin,
    tokenFile: join(tmp.dir, "token.json"),
    logger: captureLogger().logger,
    metrics,
    env: fake.env,
    ...over,
  });
}

/** The promise's rejection, or a failure if it neither settles within `deadlineMs` nor rejects. */
async function rejection(p: Promise<unknown>, deadlineMs = 15_000): Promise<NscError> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>(
    (resolve) => (timer = setTimeout(() => resolve(`still running after ${deadlineMs} ms`), deadlineMs)),
  );
  const outcome = await Promise.race([
    p.then(
      (v) => ({ resolved: v }),
      (e: unknown) => ({ rejected: e }),
    ),
    deadline,
  ]);
  clearTimeout(timer);
  if (typeof outcome === "string") throw new Error(outcome);
  if ("resolved" in outcome) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.resolved).slice(0, 200)}`);
  expect(outcome.rejected).toBeInstanceOf(NscError);
  return outcome.rejected as NscError;
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

const runOpts = { image: "img", command: ["/bin/true"], labels: { "forgejo-nsc.runner": "r1" } };

describe("nsc answers are checked against a schema", () => {
  it('refuses {"instance_id": 12345} from nsc run, naming the field and the expected type', async () => {
    fake.setKnobs({ output: { run: '{"instance_id": 12345}\n' } });
    const err = await rejection(cli().run(runOpts));
    expect(err.kind).toBe("transient");
    expect(err.message).toMatch(/^nsc run printed output forgejo-nsc cannot use \(instance_id: .*expected string, received number\)/);
    expect(err.message).toMatch(/check that namespace.nsc_binary is nsc/);
  });

  it("refuses a run answer without any instance ID, and one whose ID could not be passed back to nsc", async () => {
    fake.setKnobs({ output: { run: '{"cluster_url": "https://x"}\n' } });
    expect((await rejection(cli().run(runOpts))).message).toMatch(/the answer: has neither instance_id nor cluster_id/);
    fake.setKnobs({ output: { run: '{"instance_id": "12345.0"}\n' } });
    expect((await rejection(cli().run(runOpts))).message).toMatch(/instance_id: is not an instance ID/);
  });

  it("fails the whole list look when one entry is malformed, rather than dropping the entry", async () => {
    fake.setKnobs({ output: { list: '[{"cluster_id": "abc", "labels": null}, {"cluster_id": 12345, "labels": null}]\n' } });
    const err = await rejection(cli().list({ "forgejo-nsc.owner": "default" }));
    expect(err.message).toMatch(/\[1\]\.cluster_id: .*expected string, received number/);
    fake.setKnobs({ output: { list: '[{"cluster_id": "abc", "labels": {"forgejo-nsc.runner": 7}}]\n' } });
    expect((await rejection(cli().list({}))).message).toMatch(/\[0\]\.labels\.forgejo-nsc\.runner: .*expected string, received number/);
    fake.setKnobs({ output: { list: '{"instances": []}\n' } });
    expect((await rejection(cli().list({}))).message).toMatch(/the answer: .*expected array, received object/);
    const bad = (await metrics.namespaceCalls.get()).values.find((v) => v.labels.command === "list" && v.labels.outcome === "bad_output");
    expect(bad?.value).toBe(3);
  });

  it("refuses a describe answer that is not the summary list", async () => {
    const { instanceId } = await cli().run(runOpts);
    fake.setKnobs({ output: { describe: '{"resource": "pods"}\n' } });
    expect((await rejection(cli().describe(instanceId))).message).toMatch(
      /nsc describe printed output forgejo-nsc cannot use \(the answer: .*expected array/,
    );
  });

  it("refuses a create record whose service credentials are malformed, without quoting them", async () => {
    const record = { cluster_id: "abc123", service_state: [{ name: "rdp", credentials: { username: "runneradmin", password: 12345678 } }] };
    fake.setKnobs({ output: { createRecord: JSON.stringify(record) } });
    const err = await rejection(cli().create({ machineType: "windows/amd64:4x8" }));
    expect(err.message).toMatch(
      /^nsc create wrote an --output_json_to file forgejo-nsc cannot use \(service_state\[0\]\.credentials\.password: .*expected string, received number\)/,
    );
    expect(err.message).not.toContain("runneradmin");
    expect(err.message).not.toContain("12345678");
    expect(err.instanceId).toMatch(/^[a-z0-9]+$/);
  });

  it("still takes well-formed answers: null lists, old nsc's cluster_id, labels", async () => {
    expect(await cli().list({})).toEqual([]);
    fake.setKnobs({ omitInstanceId: true });
    const { instanceId } = await cli().run(runOpts);
    expect(await cli().list({ "forgejo-nsc.runner": "r1" })).toEqual([
      { instanceId, labels: { "forgejo-nsc.runner": "r1" }, createdAt: expect.any(String) },
    ]);
  });
});

describe("nsc output is bounded", () => {
  it("stops a list that prints more than 16 MiB and says so, instead of reading it all", async () => {
    fake.setKnobs({ listFloodBytes: 20 * 1024 * 1024 });
    const err = await rejection(cli().list({}));
    expect(err.message).toMatch(/^nsc list printed more than 16 MiB on stdout and was stopped; .*check that namespace.nsc_binary is nsc/);
  });

  it("applies a configured limit to every command", async () => {
    const err = await rejection(cli({ maxOutputBytes: 64 }).run(runOpts));
    expect(err.message).toMatch(/nsc run printed more than 64 bytes/);
  });
});

// The limits leave the fake (a node process) time to start on a loaded machine and reach its hang.
describe("a hung nsc is stopped with everything it started", () => {
  it("kills a run that hangs, and the child holding its output, once the time is up", async () => {
    fake.setKnobs({ hang: { run: true }, hangStubborn: true });
    const err = await rejection(cli({ timeoutMs: { runMargin: 1_500, killGrace: 200 } }).run({ ...runOpts, waitTimeoutMs: 1_500 }));
    expect(err.kind).toBe("timeout");
    expect(err.message).toMatch(/^nsc run did not finish within 3s and was stopped/);
    const call = await waitFor(() => fake.calls("run").find((c) => c.hang_child_pid), { what: "the hanging run's child" });
    await waitFor(() => processGone(call.hang_child_pid!), { what: "the child of the hung nsc run to be gone" });
    // The instance it created is left behind, as with the real CLI: the dispatcher must find it.
    expect(fake.instances()).toHaveLength(1);
  });

  it("kills a list that hangs", async () => {
    fake.setKnobs({ hang: { list: 1 }, hangStubborn: true });
    const err = await rejection(cli({ timeoutMs: { quick: 3_000, killGrace: 200 } }).list({}));
    expect(err.kind).toBe("timeout");
    expect(err.message).toMatch(/^nsc list did not finish within 3s and was stopped/);
    const call = await waitFor(() => fake.calls("list").find((c) => c.hang_child_pid), { what: "the hanging list's child" });
    await waitFor(() => processGone(call.hang_child_pid!), { what: "the child of the hung nsc list to be gone" });
    expect(await cli().list({})).toEqual([]);
  });
});
