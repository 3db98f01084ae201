import { describe, expect, it } from "vitest";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { CredentialSource } from "../../src/dispatcher/credentials.js";
import type { ForgejoApi, ServerInfo } from "../../src/forgejo/types.js";
import { DEFAULT_RUNNER_VERSION, ephemeralRunnerProblem, imageRunnerVersion } from "../../src/runner/runner-version.js";
import { configProblems } from "../helpers/config-problems.js";

const BASE = "forgejo:\n  base_url: https://forge.example\n  token: t\n";

const problems = (yaml: string): string[] => configProblems(() => parseConfig(dispatcherConfigSchema, BASE + yaml, "c.yaml", {}));

describe("runner version and image", () => {
  it("defaults the Linux image to the pinned runner release", () => {
    const c = parseConfig(dispatcherConfigSchema, BASE, "c.yaml", {});
    expect(c.runner.version).toBe(DEFAULT_RUNNER_VERSION);
    expect(c.namespace.image).toBe(`code.forgejo.org/forgejo/runner:${DEFAULT_RUNNER_VERSION}`);
    expect(ephemeralRunnerProblem(DEFAULT_RUNNER_VERSION, "x")).toBeUndefined();
    const own = parseConfig(dispatcherConfigSchema, `${BASE}runner:\n  version: 12.9.0\n`, "c.yaml", {});
    expect(own.namespace.image).toBe("code.forgejo.org/forgejo/runner:12.9.0");
  });

  it("refuses a runner too old for ephemeral runners when registration is ephemeral, naming the key", () => {
    const tooOld = problems(
      "forgejo:\n  base_url: https://forge.example\n  token: t\n  registration: ephemeral\nrunner:\n  version: 12.6.4\n".replace(BASE, ""),
    );
    expect(tooOld.join("\n")).toMatch(/runner\.version.*12\.6\.4, too old for ephemeral runners.*12\.8\.0/);
    const image = problems(
      "forgejo:\n  base_url: https://forge.example\n  token: t\n  registration: ephemeral\nnamespace:\n  image: data.forgejo.org/forgejo/runner:v11.3.1\n".replace(
        BASE,
        "",
      ),
    );
    expect(image.join("\n")).toMatch(/namespace\.image.*11\.3\.1, too old/);
    // Token mode runs on any release that has one-job.
    expect(problems("runner:\n  version: 12.6.4\n")).toEqual([]);
  });

  it("reads the version off upstream image tags only", () => {
    expect(imageRunnerVersion("code.forgejo.org/forgejo/runner:12.13.2")).toBe("12.13.2");
    expect(imageRunnerVersion("data.forgejo.org/forgejo/runner:v12.8.0")).toBe("v12.8.0");
    expect(imageRunnerVersion("code.forgejo.org/forgejo/runner:12")).toBeUndefined();
    expect(imageRunnerVersion("ghcr.io/me/runner:12.6.4")).toBeUndefined();
  });

  it("with registration auto, an old runner on Forgejo >= 15 gets registration tokens and one warning", async () => {
    const config = parseConfig(dispatcherConfigSchema, `${BASE}runner:\n  version: 12.6.4\n`, "c.yaml", {});
    const info: ServerInfo = {
      kind: "forgejo",
      version: "15.0.9",
      major: 15,
      minor: 0,
      jobsApi: true,
      jobsWithoutLabels: true,
      runnersApi: true,
      jobHandles: true,
      workflowJobWebhook: false,
    };
    const forgejo = { serverInfo: async () => info } as unknown as ForgejoApi;
    const warnings: string[] = [];
    const creds = new CredentialSource(
      forgejo,
      config,
      () => new Date(),
      (m) => warnings.push(m),
    );
    expect(await creds.mode()).toBe("token");
    expect(await creds.mode()).toBe("token");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/using registration tokens.*12\.6\.4/);
    const current = new CredentialSource(forgejo, parseConfig(dispatcherConfigSchema, BASE, "c.yaml", {}), () => new Date());
    expect(await current.mode()).toBe("ephemeral");
  });
});
