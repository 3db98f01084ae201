import { describe, expect, it } from "vitest";
import { LinuxLauncher } from "../../src/namespace/linux-launcher.js";
import { NscCli } from "../../src/namespace/nsc-cli.js";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { waitFor } from "../helpers/wait.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

// A hung `nsc run` leaves an instance nobody has the ID of, and `nsc list` hangs too. The runner
// must not be launched again until that instance is known to be gone: otherwise each attempt
// leaves one more instance running until its TTL.

let h: Harness | undefined;
const own = closedAfterEach();

describe("a hung nsc", () => {
  it("is stopped, and the runner is launched again only after the instance it left is destroyed", async () => {
    h = own(
      await startHarness({
        forgejo: { repos: [{ owner: "acme", name: "app" }] },
        // Instances stay up without running a job: the leftover must be removed, not end by itself.
        simulate: false,
        // The run hangs; so do the launcher's look for what it left and the dispatcher's first look.
        knobs: { hang: { run: 1, list: 2 }, hangStubborn: true },
        yaml: "namespace:\n  wait_timeout: 1s\n",
        customize: (deps) => {
          const nsc = new NscCli({
            binary: deps.config.namespace.nsc_binary,
            logger: deps.logger,
            // Limits that leave a node-based fake time to start on a loaded machine, and keep the test short.
            timeoutMs: { runMargin: 1_500, quick: 2_000, killGrace: 200 },
          });
          return { ...deps, launchers: { ...deps.launchers, linux: new LinuxLauncher({ config: deps.config, nsc, logger: deps.logger }) } };
        },
      }),
    );
    const job = h.forgejo.addJob({ repo: "acme/app", runs_on: ["linux-x"] });
    const res = await h.request("POST", "/api/v1/dispatch", {
      labels: ["linux-x"],
      scope: { level: "repository", owner: "acme", name: "app" },
      job: { id: job.id, handle: job.handle },
    });
    expect(res.status).toBe(202);
    const name = res.body.runners[0].name as string;

    // While nobody can tell whether the hung run left an instance, the runner waits in launching.
    const waiting = await waitFor(
      async () => {
        const r = await h!.store.getRunner(name);
        return r?.reason.includes("not launching again until it is known that this attempt left no instance") ? r : undefined;
      },
      { timeoutMs: 20_000, what: "the runner to wait for the leftover check" },
    );
    expect(waiting.state).toBe("launching");
    expect(waiting.reason).toMatch(/^launch attempt 1\/3 failed: .*nsc run did not finish within 3s and was stopped/);
    expect(waiting.reason).toMatch(/nsc list did not finish within 2s and was stopped/);
    expect(h.nsc.calls("run")).toHaveLength(1);
    const [leftover, ...others] = h.nsc.instances({ includeDestroyed: true });
    expect(others).toEqual([]);
    expect(leftover!.labels["forgejo-nsc.runner"]).toBe(name);

    // Once a look works, the leftover is destroyed, and only then is the runner queued again.
    const retrying = await waitFor(
      async () => {
        const r = await h!.store.getRunner(name);
        return r?.state === "pending" ? r : undefined;
      },
      { timeoutMs: 20_000, what: "the runner to be queued again" },
    );
    expect(retrying.reason).toMatch(/^launch attempt 1\/3 failed: .*retrying in 5s$/);
    expect(h.nsc.instances({ includeDestroyed: true }).find((i) => i.id === leftover!.id)!.destroyed_at).not.toBeNull();

    h.advance(5_000);
    h.dispatcher.scheduler.kick();
    await waitFor(async () => (await h!.store.getRunner(name))?.state === "running", {
      timeoutMs: 20_000,
      what: "the second attempt to run",
    });
    const calls = h.nsc.calls();
    const destroyAt = calls.findIndex((c) => c.command === "destroy" && c.argv.includes(leftover!.id));
    const secondRunAt = calls.findIndex((c, i) => c.command === "run" && i > calls.findIndex((x) => x.command === "run"));
    expect(destroyAt).toBeGreaterThan(-1);
    expect(destroyAt).toBeLessThan(secondRunAt);
    expect(h.nsc.instances().map((i) => i.labels["forgejo-nsc.runner"])).toEqual([name]);
    expect((await h.store.getRunner(name))!.history.map((t) => t.to)).toEqual(["pending", "launching", "pending", "launching", "running"]);
  });
});
