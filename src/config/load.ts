import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { tokenFileProblem } from "./token-file.js";

/** Every problem found in a config file, each named by its key path. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Keys whose value is a secret; `<key>_file` reads it from a file instead (agenix, systemd credentials). */
const SECRET_KEYS = new Set(["token", "tokens", "webhook_secret", "secret", "password", "bearer_token", "store"]);

/**
 * `_file` keys whose value is a path the daemon hands on, not a secret to read in:
 * nsc reads namespace.token_file itself through NSC_TOKEN_FILE (and the Compute API client
 * re-reads it on every call so a rotated token takes effect).
 */
const PATH_KEYS = new Set(["namespace.token_file"]);

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

type Env = Record<string, string | undefined>;

function expandString(value: string, path: string, env: Env, problems: string[]): string {
  return value.replace(VAR, (_all, name: string, fallback: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== "") return v;
    if (fallback !== undefined) return fallback;
    problems.push(`${path}: environment variable ${name} is ${v === undefined ? "not set" : "set but empty"}`);
    return "";
  });
}

function readSecretFile(file: string, path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    problems.push(`${path}: cannot read ${file} (${code})`);
    return undefined;
  }
}

/** Expands ${VAR} in every string and resolves `<secret>_file` keys, collecting problems by key path. */
export function resolveTree(node: unknown, path: string, env: Env, problems: string[]): unknown {
  if (typeof node === "string") return expandString(node, path || "(root)", env, problems);
  if (Array.isArray(node)) return node.map((v, i) => resolveTree(v, `${path}[${i}]`, env, problems));
  if (node === null || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] = resolveTree(value, path ? `${path}.${key}` : key, env, problems);
  }
  for (const [key, value] of Object.entries(out)) {
    const base = key.endsWith("_file") ? key.slice(0, -5) : undefined;
    if (!base || !SECRET_KEYS.has(base) || typeof value !== "string") continue;
    const at = path ? `${path}.${key}` : key;
    if (PATH_KEYS.has(at)) {
      const problem = tokenFileProblem(value);
      if (problem) problems.push(`${at}: ${problem}`);
      continue;
    }
    const content = readSecretFile(value, at, problems);
    if (content === undefined) continue;
    if (base === "tokens") {
      const existing = Array.isArray(out.tokens) ? (out.tokens as unknown[]) : [];
      out.tokens = [
        ...existing,
        ...content
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter((l) => l && !l.startsWith("#")),
      ];
    } else {
      if (out[base] !== undefined) problems.push(`${at}: set either ${base} or ${key}, not both`);
      out[base] = content;
    }
  }
  return out;
}

const formatPath = (path: readonly PropertyKey[]) =>
  path
    .map((p) => (typeof p === "number" ? `[${p}]` : String(p)))
    .join(".")
    .replace(/\.\[/g, "[") || "(root)";

/** What zod's type names mean in a YAML file. */
const YAML_KINDS: Record<string, string> = {
  array: "a list",
  object: "a mapping of keys",
  string: "a string",
  number: "a number",
  boolean: "true or false",
};

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((i) => {
    // zod's "Invalid input: expected array, received undefined" means the key is missing.
    const missing = i.code === "invalid_type" ? /^Invalid input: expected (\w+), received undefined$/.exec(i.message) : null;
    if (missing) return `${formatPath(i.path)}: required: ${YAML_KINDS[missing[1]!] ?? missing[1]}`;
    // zod says only "Invalid key in record" and keeps the key's own message nested: surface it.
    if (i.code === "invalid_key") {
      // The key's own message, under its path; a key that is not plain printable text is quoted
      // (escaped, shortened) instead of echoed into the path as it is.
      const key = String(i.path[i.path.length - 1] ?? "");
      const why = i.issues.map((n) => n.message).join("; ");
      if (/^[\x21-\x7e]{1,64}$/.test(key)) return `${formatPath(i.path)}: ${why}`;
      return `${formatPath(i.path.slice(0, -1))}: key ${JSON.stringify(key.slice(0, 64))}${key.length > 64 ? "…" : ""}: ${why}`;
    }
    return `${formatPath(i.path)}: ${i.message}`;
  });
}

/** Parses YAML text against a schema; throws ConfigError listing every problem. */
export function parseConfig<S extends z.ZodType>(schema: S, text: string, source: string, env: Env = process.env): z.output<S> {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(source, [`not valid YAML: ${(err as Error).message}`]);
  }
  const problems: string[] = [];
  const resolved = resolveTree(raw, "", env, problems);
  const result = schema.safeParse(resolved);
  if (!result.success) {
    // A key whose variable or file could not be resolved already has its problem; the schema's
    // complaints about the empty value left in its place would only repeat it.
    const unresolved = new Set(problems.map((p) => p.slice(0, p.indexOf(": ")).replace(/_file$/, "")));
    problems.push(...formatIssues(result.error.issues).filter((p) => !unresolved.has(p.slice(0, p.indexOf(": ")))));
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  return (result as { data: z.output<S> }).data;
}

export function loadConfigFile<S extends z.ZodType>(schema: S, file: string, env: Env = process.env): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, [`cannot read the config file (${(err as NodeJS.ErrnoException).code ?? "error"})`]);
  }
  return parseConfig(schema, text, file, env);
}
