import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { configProblems } from "../helpers/config-problems.js";
import { deepMerge, isTree } from "../helpers/deep-merge.js";
import type { Tree } from "../helpers/deep-merge.js";

/**
 * Every configuration example in the docs is one the daemons accept: each ```yaml block of README.md
 * and docs/*.md is put, as the fragment it is, into a minimal valid config of the daemon it belongs
 * to and parsed with that daemon's own schema. A key the schema does not know (docs/replicas.md once
 * showed `replicas.database_file`, which never existed), a wrong value or a wrong nesting fails here.
 * Files the examples name (`*_file`) do not exist on this machine; only those problems are ignored.
 */
const ROOT = join(import.meta.dirname, "../..");
const files = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

interface Example {
  where: string;
  fragment: Tree;
}

function examples(): Example[] {
  const out: Example[] = [];
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
      const line = text.slice(0, m.index).split("\n").length;
      out.push({ where: `${file}:${line}`, fragment: (parseYaml(m[1]!) ?? {}) as Tree });
    }
  }
  return out;
}

const FORGEJO = { base_url: "https://forgejo.example", token: "t" };
const autoscalerBase = (): Tree => ({
  dispatcher: { url: "http://127.0.0.1:8080", token: "t" },
  instances: [{ name: "f", forgejo: FORGEJO, targets: [{ labels: ["linux"] }] }],
});

/** Which daemon a fragment configures, and the whole config it makes; undefined for YAML that is not a daemon's config (compose files). */
function asConfig(fragment: Tree): { daemon: "dispatcher" | "autoscaler"; config: Tree } | undefined {
  if ("services" in fragment) return undefined;
  if ("targets" in fragment) {
    // One instance's fragment (its targets).
    const base = autoscalerBase();
    const [inst] = base.instances as Tree[];
    return { daemon: "autoscaler", config: { ...base, instances: [{ ...inst, ...fragment }] } };
  }
  const dispatcherUrl = isTree(fragment.dispatcher) && "url" in fragment.dispatcher;
  if ("instances" in fragment || "replicas" in fragment || dispatcherUrl) {
    const base = autoscalerBase();
    const [inst] = base.instances as Tree[];
    // An instance shown for one feature (webhooks, say) leaves out what it does not discuss: the base instance fills it in.
    const instances = Array.isArray(fragment.instances)
      ? { instances: (fragment.instances as Tree[]).map((i) => deepMerge(inst!, i)) }
      : {};
    return { daemon: "autoscaler", config: deepMerge(base, { ...fragment, ...instances }) };
  }
  return { daemon: "dispatcher", config: deepMerge({ forgejo: FORGEJO }, fragment) };
}

const all = examples();

describe("configuration examples in the docs", () => {
  it("there are examples to check (the extraction works)", () => {
    expect(all.filter((e) => asConfig(e.fragment)).length).toBeGreaterThanOrEqual(10);
  });

  it.each(all.filter((e) => asConfig(e.fragment)).map((e) => [e.where, e] as const))("%s is accepted", (_where, e) => {
    const { daemon, config } = asConfig(e.fragment)!;
    const schema = daemon === "dispatcher" ? dispatcherConfigSchema : autoscalerConfigSchema;
    const problems = configProblems(() => parseConfig(schema, JSON.stringify(config), e.where, {}));
    // The files examples point at (credentials, CA files) are not on this machine.
    expect(problems.filter((p) => !/^[\w.[\]]*_file: /.test(p))).toEqual([]);
  });
});
