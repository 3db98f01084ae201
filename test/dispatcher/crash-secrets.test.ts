import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { DEADLINE_MS, ProcessWorld, expectNoSecrets, expectSettled } from "./process-harness.js";

let world: ProcessWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

const ENV_SECRET = "env-secret-value-7f3a9c1e5b2d4680";
const WRONG_TOKEN = "wrong-bearer-token-0a1b2c3d4e5f6789";

describe("secrets in the dispatcher process's output", () => {
  it(
    "never prints the PAT, API token, registration token, runner tokens or request env values, across kills, restarts and failures",
    { timeout: 240_000 },
    async () => {
      // Registration-token mode first: the scope's shared registration token travels to the instance.
      world = await ProcessWorld.create({ config: { forgejo: { registration: "token" } } });
      const w = world;
      const sim = w.simulate({ jobMs: 100 });
      await w.start();

      const denied = await w.request("POST", "/api/v1/dispatch", {}, { authorization: `Bearer ${WRONG_TOKEN}` });
      expect(denied.status).toBe(401);
      // A failed nsc run on the way (retried after 5 s), so the error paths log too.
      w.nsc.setKnobs({ transient: { run: 1 } });
      const a = await w.dispatchJob({ env: { DEPLOY_KEY: ENV_SECRET } });
      await waitFor(() => w.nsc.calls("run").some((c) => c.exitCode === 1), { timeoutMs: DEADLINE_MS, what: "the failed nsc run" });
      await w.waitState(a.name, "running");
      // Kill mid-job, then come back in ephemeral-registration mode (the default on Forgejo 15).
      await w.kill("SIGKILL");
      w.configure({ forgejo: { registration: "auto" } });
      await w.start();
      const b = await w.dispatchJob({ env: { DEPLOY_KEY: ENV_SECRET } });
      await expectSettled(w, [a, b], sim);

      const tokens = w.forgejo.state;
      expect(tokens.registrationTokens.length).toBeGreaterThan(0);
      expect(tokens.runners.filter((r) => r.registeredVia === "rest")).toHaveLength(1);
      expect(tokens.runners.filter((r) => r.registeredVia === "registration_token")).toHaveLength(1);
      // The secrets did reach where they belong: the instances' environment.
      const envs = w.nsc.instances({ includeDestroyed: true }).map((i) => JSON.stringify(i.env ?? {}));
      expect(envs.every((e) => e.includes(ENV_SECRET))).toBe(true);
      expect(envs.some((e) => tokens.registrationTokens.some((t) => e.includes(t.token)))).toBe(true);
      expect(w.processes).toHaveLength(2);
      expect(w.output()).toMatch(/launch attempt 1\/3 failed/);
      expectNoSecrets(w, [ENV_SECRET, WRONG_TOKEN]);
    },
  );
});
