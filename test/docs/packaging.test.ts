import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { tempDir } from "../helpers/tmp.js";

/**
 * Issue 10, item 16: the packaging and its docs say what the code does. Each check reads the
 * shipped file itself (Dockerfile, Caddyfile, workflow, docs), so a drift fails here.
 */
const ROOT = join(import.meta.dirname, "../..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const tmp = tempDir("fnsc-pkg-");
afterAll(() => tmp.cleanup());

/** The runtime stage of the Dockerfile: its last FROM onwards, continuation lines joined. */
function runtimeStage(): string[] {
  const lines = read("Dockerfile").replace(/\\\n/g, " ").split("\n");
  const from = lines.map((l, i) => (/^FROM /.test(l) ? i : -1)).filter((i) => i >= 0);
  return lines.slice(from[from.length - 1]);
}

const defaultStatePath = () =>
  parseConfig(dispatcherConfigSchema, "forgejo: {base_url: 'https://f.example', token: t}\n", "t.yaml", {}).dispatcher.state_path;

describe("the container's state path", () => {
  it("the default state path resolves into the volume, which uid 10001 owns", () => {
    const stage = runtimeStage();
    const workdir = stage
      .filter((l) => l.startsWith("WORKDIR "))
      .pop()
      ?.slice("WORKDIR ".length)
      .trim();
    const volume = stage.find((l) => l.startsWith("VOLUME "));
    expect(stage.filter((l) => l.startsWith("USER ")).pop()).toBe("USER 10001:10001");
    expect(volume).toContain(`"${workdir}"`);
    expect(stage.join("\n")).toMatch(new RegExp(`install -d -m 0700 -o 10001 -g 10001 ${workdir}\\b`));
    const resolved = join(workdir as string, defaultStatePath());
    expect(resolved.startsWith(`${workdir}/`)).toBe(true);
    // The Nix-built image says the same.
    expect(read("nix/image.nix")).toContain(`WorkingDir = "${workdir}";`);
  });

  it("docs/store.md and docs/deployment.md give the real defaults", () => {
    const store = read("docs/store.md");
    const workdir = runtimeStage()
      .filter((l) => l.startsWith("WORKDIR "))
      .pop()
      ?.slice("WORKDIR ".length)
      .trim() as string;
    const container = join(workdir, defaultStatePath());
    const nixos = /dispatcher\.state_path = mkDefault "([^"]+)"/.exec(read("nix/module.nix"))?.[1] as string;
    expect(store).toContain(`\`${defaultStatePath()}\``);
    expect(store).toContain(`\`${container}\` in the container`);
    expect(store).toContain(`\`${nixos}\` with the NixOS module`);
    expect(read("docs/deployment.md")).toContain(`\`${container}\``);
  });
});

describe("docs/deployment.md", () => {
  it("every docker run of a daemon mounts the config it names", () => {
    const text = read("docs/deployment.md").replace(/\\\n\s*/g, " ");
    const runs = text.split("\n").filter((l) => /^docker run .* (dispatcher|autoscaler) --config /.test(l));
    expect(runs.length).toBeGreaterThanOrEqual(3);
    for (const r of runs) {
      const config = /--config (\S+)/.exec(r)?.[1] as string;
      const mounts = [...r.matchAll(/-v "?([^"\s]+)"?/g)].map((m) => (m[1] as string).split(":")[1] as string);
      expect(
        mounts.some((m) => config === m || config.startsWith(`${m}/`)),
        r,
      ).toBe(true);
    }
  });

  it("names the environment variable each daemon reads its config file from", () => {
    for (const bin of ["src/bin/dispatcher.ts", "src/bin/autoscaler.ts"]) {
      const env = /configEnv: "([A-Z_]+)"/.exec(read(bin))?.[1] as string;
      expect(env).toMatch(/^FORGEJO_NSC_/);
      expect(read("README.md"), bin).toContain(`\`${env}\``);
      expect(read("docs/deployment.md"), bin).toContain(`\`${env}\``);
    }
  });
});

describe("deploy/Caddyfile.example", () => {
  /** Caddy's sizes: KB/MB are powers of 1000, KiB/MiB of 1024. */
  const bytes = (size: string) => {
    const m = /^(\d+)(KB|KiB|MB|MiB)?$/.exec(size);
    if (!m) throw new Error(`unexpected size ${size}`);
    return Number(m[1]) * ({ KB: 1000, KiB: 1024, MB: 1e6, MiB: 1024 * 1024 }[m[2] as string] ?? 1);
  };

  it("its body limits are the daemons' own, not smaller", () => {
    const d = parseConfig(dispatcherConfigSchema, "forgejo: {base_url: 'https://f.example', token: t}\n", "t.yaml", {});
    const a = parseConfig(
      autoscalerConfigSchema,
      "dispatcher: {url: 'http://127.0.0.1:8080'}\ninstances: [{name: fj, forgejo: {base_url: 'https://f.example', token: t}, targets: [{labels: [l]}]}]\n",
      "t.yaml",
      {},
    );
    const sizes = [...read("deploy/Caddyfile.example").matchAll(/max_size (\S+)/g)].map((m) => bytes(m[1] as string));
    expect(sizes.sort((x, y) => x - y)).toEqual([d.http.body_limit, a.http.body_limit, a.webhooks.body_limit].sort((x, y) => x - y));
  });
});

describe(".forgejo/workflows/container.yml", () => {
  const workflow = parseYaml(read(".forgejo/workflows/container.yml")) as {
    jobs: { build: { steps: { name?: string; env?: Record<string, string>; run?: string }[] } };
  };
  const step = workflow.jobs.build.steps.find((s) => s.name?.startsWith("Build and push")) as { env: Record<string, string>; run: string };

  it("passes each variable through as it is: no `a && b || c` fallback in an expression", () => {
    for (const [k, v] of Object.entries(step.env)) expect(v, k).not.toMatch(/&&|\|\|/);
  });

  it.each([
    ["amd64", "amd-sha", "arm-sha", "amd-sha"],
    ["arm64", "amd-sha", "arm-sha", "arm-sha"],
    ["amd64", "", "arm-sha", ""],
  ])("on %s with amd64 hash %j and arm64 hash %j, the build verifies against %j", (arch, amd, arm, expected) => {
    const bin = join(tmp.dir, `bin-${arch}-${amd || "none"}`);
    mkdirSync(bin, { recursive: true });
    const log = join(bin, "docker-args");
    writeFileSync(join(bin, "docker"), `#!/bin/sh\nprintf '%s\\n' "$@" >> ${log}\n`);
    chmodSync(join(bin, "docker"), 0o755);
    // The step's env with the workflow's ${{ … }} lookups replaced by the values a runner would give.
    const lookups: Record<string, string> = {
      "matrix.arch": arch,
      "vars.NSC_SHA256_AMD64": amd,
      "vars.NSC_SHA256_ARM64": arm,
      "vars.NSC_VERSION": "0.0.558",
      "vars.FORGEJO_RUNNER_VERSION": "",
      "steps.meta.outputs.image": "ghcr.io/acme/forgejo-nsc",
      "steps.meta.outputs.tag": "sha-0123",
    };
    const env: Record<string, string> = {
      PATH: `${bin}:${process.env.PATH}`,
      GITHUB_SERVER_URL: "https://code.example",
      GITHUB_REPOSITORY: "acme/forgejo-nsc",
      GITHUB_SHA: "0123",
    };
    for (const [k, v] of Object.entries(step.env)) {
      const m = /^\$\{\{\s*([\w.]+)\s*\}\}$/.exec(v);
      if (!m || !((m[1] as string) in lookups)) throw new Error(`${k}: ${v} is not a plain lookup this test knows`);
      env[k] = lookups[m[1] as string] as string;
    }
    execFileSync("bash", ["-euo", "pipefail", "-c", step.run], { env });
    const args = readFileSync(log, "utf8").split("\n");
    expect(args).toContain(`NSC_SHA256=${expected}`);
    expect(args).toContain(`linux/${arch}`);
  });
});
