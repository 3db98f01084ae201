import { join, resolve } from "node:path";
import { parseDuration } from "../../config/duration.js";
import { isLoopbackHost } from "../../config/common.js";
import { scopeKey } from "../../forgejo/scope.js";
import type { ServerInfo } from "../../forgejo/types.js";
import { describeServer } from "../../forgejo/version.js";
import { noPositionals, parseFlags } from "../args.js";
import { CliError, UsageError } from "../errors.js";
import type { CliIo } from "../io.js";
import { readSecretFile, readSecretStdin } from "../secret-input.js";
import {
  commitFiles,
  existingFiles,
  makeStaging,
  prepareOutDir,
  removeFiles,
  removeIfEmpty,
  removeStaging,
  writePrivateFile,
} from "./files.js";
import { checkPatForScope, forgejoVersion, mintPat, patScopesFor, roleFor } from "./forgejo-pat.js";
import { DEFAULT_NSC_GRANT, checkNscLogin, createNscToken, devNscToken, readNscTokenFile } from "./nsc-token.js";
import type { NscRun } from "./nsc-token.js";
import { parseScopeArg } from "./scope-arg.js";
import { newApiToken, newWebhookSecret } from "./secrets.js";
import { FILES, renderAutoscalerYaml, renderDispatcherYaml, validateRendered, webhookUrl } from "./render.js";
import type { RenderInput } from "./render.js";

export const PROVISION_USAGE = `Usage:
  forgejo-nsc provision --out <dir> --forgejo-url <url> [flags]

Writes into <dir> (mode 0700; files 0600): dispatcher.yaml, autoscaler.yaml, forgejo-token,
webhook-secret, dispatcher-token and nsc-token.json. Refuses to overwrite unless --force.
Never prints a secret.

Where and what:
  --out <dir>                    output directory (required)
  --forgejo-url <url>            Forgejo base URL, e.g. https://forgejo.example.com (required)
  --scope <scope>                instance (default), org:<org>, repo:<owner>/<name> or user
  --labels <a,b>                 runner labels to serve (default namespace-profile-linux-medium)
  --name <name>                  instance name in autoscaler.yaml and /webhook/<name>
                                 (default: derived from the Forgejo host name)
  --public-url <url>             the autoscaler's URL as Forgejo reaches it; the autoscaler then
                                 creates the webhook itself (default: configure it by hand)
  --forgejo-runner-url <url>     Forgejo URL the runners on Namespace use, when --forgejo-url is
                                 internal (forgejo.instance_url)
  --config-dir <dir>             directory the daemons will read the secret files from, when it
                                 is not <dir> (e.g. after copying to /etc/forgejo-nsc)
  --dispatcher-listen <addr>     default 127.0.0.1:8080
  --autoscaler-listen <addr>     default 127.0.0.1:8081
  --state-path <file>            dispatcher.state_path (default: the dispatcher's default)
  --force                        replace existing files in <dir>

Forgejo token (one of):
  --forgejo-token-file <file>    use an existing personal access token
  --forgejo-user <login>         mint a token for this user (an admin, or an owner of the scope)
    --forgejo-password-file <f>  its password from a file, or
    --forgejo-password-stdin     read the password from stdin (first line), or
                                 set FORGEJO_PASSWORD in the environment
    --forgejo-otp <code>         current TOTP code if the account uses two-factor authentication
    --pat-name <name>            token name (default forgejo-nsc-<UTC time>)
  --skip-verify                  do not check the token against the scope's webhook API

Namespace token:
  --nsc-token <mode>             create (default): nsc token create, a revocable token
                                 dev: nsc auth generate-dev-token (expires in about an hour)
                                 none: write no nsc-token.json (nsc uses its own login)
  --nsc-token-file <file>        use this token file instead (JSON or a raw token)
  --nsc <path>                   nsc binary (default nsc); any other value is also written as
                                 namespace.nsc_binary
  --nsc-token-name <name>        default forgejo-nsc-<UTC time>
  --nsc-token-expires <dur>      default 2160h (90 days; nsc allows up to 365)
  --nsc-grant <json>             grant JSON, repeatable (default: instance create/list/get/wait/destroy)
  --nsc-token-user               bind the token to your own workspace membership (nsc --user)
  --region <region>              namespace.region for the dispatcher
  --timeout <duration>           per Forgejo request and nsc call (default 30s)
  -h, --help                     this text
`;

const OPTIONS = {
  out: { type: "string" },
  "forgejo-url": { type: "string" },
  scope: { type: "string", default: "instance" },
  labels: { type: "string", default: "namespace-profile-linux-medium" },
  name: { type: "string" },
  "public-url": { type: "string" },
  "forgejo-runner-url": { type: "string" },
  "config-dir": { type: "string" },
  "dispatcher-listen": { type: "string", default: "127.0.0.1:8080" },
  "autoscaler-listen": { type: "string", default: "127.0.0.1:8081" },
  "state-path": { type: "string" },
  force: { type: "boolean", default: false },
  "forgejo-token-file": { type: "string" },
  "forgejo-user": { type: "string" },
  "forgejo-password-file": { type: "string" },
  "forgejo-password-stdin": { type: "boolean", default: false },
  "forgejo-otp": { type: "string" },
  "pat-name": { type: "string" },
  "skip-verify": { type: "boolean", default: false },
  "nsc-token": { type: "string", default: "create" },
  "nsc-token-file": { type: "string" },
  nsc: { type: "string", default: "nsc" },
  "nsc-token-name": { type: "string" },
  "nsc-token-expires": { type: "string", default: "2160h" },
  "nsc-grant": { type: "string", multiple: true },
  "nsc-token-user": { type: "boolean", default: false },
  region: { type: "string" },
  timeout: { type: "string", default: "30s" },
  help: { type: "boolean", short: "h", default: false },
} as const;

type Values = ReturnType<typeof parseFlags<typeof OPTIONS>>["values"];

function usage(message: string): UsageError {
  return new UsageError(message, PROVISION_USAGE);
}

function httpUrl(flag: string, text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw usage(`${flag} "${text}" is not a URL; write it like https://forgejo.example.com`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw usage(`${flag} must be an http(s) URL`);
  if (u.username || u.password) throw usage(`${flag} must not contain credentials; use the token and password flags`);
  return text.replace(/\/+$/, "");
}

/** UTC time as a token-name suffix: 20260801T101500Z. */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

function defaultInstanceName(forgejoUrl: string): string {
  const host = new URL(forgejoUrl).hostname.toLowerCase();
  const first = host.split(".")[0] ?? "";
  const name = (/^\d+$/.test(first) || first === "" ? "forgejo" : first).replace(/[^a-z0-9_-]/g, "-").slice(0, 63);
  return /^[a-z0-9]/.test(name) ? name : "forgejo";
}

type NscMode = { kind: "create" | "dev" | "none" } | { kind: "file"; path: string };

interface Plan {
  out: string;
  configDir: string;
  render: RenderInput;
  pat: { kind: "file"; path: string } | { kind: "mint"; user: string; patName: string };
  nsc: NscMode;
  timeoutMs: number;
  names: string[];
}

function plan(v: Values, io: CliIo): Plan {
  if (!v.out) throw usage("--out <dir> is required: the directory to write the configs and secrets into");
  if (!v["forgejo-url"]) throw usage("--forgejo-url <url> is required, e.g. --forgejo-url https://forgejo.example.com");
  const forgejoUrl = httpUrl("--forgejo-url", v["forgejo-url"]);
  const scope = parseScopeArg(v.scope);
  if (typeof scope === "string") throw usage(scope);
  const labels = v.labels
    .split(",")
    .map((l) => l.trim())
    .filter(Boolean);
  if (labels.length === 0) throw usage("--labels needs at least one label");
  const timeoutMs = parseDuration(v.timeout);
  if (timeoutMs === undefined || timeoutMs < 100) throw usage(`--timeout "${v.timeout}" is not a duration such as 30s`);
  if (parseDuration(v["nsc-token-expires"]) === undefined)
    throw usage(`--nsc-token-expires "${v["nsc-token-expires"]}" is not a duration such as 2160h`);

  if (v["forgejo-token-file"] && v["forgejo-user"])
    throw usage("give either --forgejo-token-file (an existing token) or --forgejo-user (mint one), not both");
  if (!v["forgejo-token-file"] && !v["forgejo-user"]) {
    throw usage("a Forgejo token is needed: pass --forgejo-token-file <file>, or --forgejo-user <login> with a password to mint one");
  }
  const at = io.now();
  const pat: Plan["pat"] = v["forgejo-token-file"]
    ? { kind: "file", path: v["forgejo-token-file"] }
    : { kind: "mint", user: v["forgejo-user"] as string, patName: v["pat-name"] ?? `forgejo-nsc-${stamp(at)}` };
  if (pat.kind === "file" && (v["forgejo-password-file"] || v["forgejo-password-stdin"] || v["forgejo-otp"] || v["pat-name"])) {
    throw usage("--forgejo-password-*, --forgejo-otp and --pat-name only apply with --forgejo-user");
  }
  if (v["forgejo-password-file"] && v["forgejo-password-stdin"])
    throw usage("give either --forgejo-password-file or --forgejo-password-stdin, not both");

  let nsc: NscMode;
  if (v["nsc-token-file"]) nsc = { kind: "file", path: v["nsc-token-file"] };
  else if (v["nsc-token"] === "create" || v["nsc-token"] === "dev" || v["nsc-token"] === "none") nsc = { kind: v["nsc-token"] };
  else throw usage(`--nsc-token "${v["nsc-token"]}" is not a mode: use create, dev or none (or --nsc-token-file <file>)`);

  const instanceName = v.name ?? defaultInstanceName(forgejoUrl);
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/i.test(instanceName))
    throw usage(`--name "${instanceName}": letters, digits, '-' and '_' only, at most 63 characters`);
  const out = resolve(v.out);
  const configDir = v["config-dir"] ? resolve(v["config-dir"]) : out;
  const render: RenderInput = {
    forgejoUrl,
    runnerUrl: v["forgejo-runner-url"] ? httpUrl("--forgejo-runner-url", v["forgejo-runner-url"]) : undefined,
    scope,
    labels,
    instanceName,
    dispatcherListen: v["dispatcher-listen"],
    autoscalerListen: v["autoscaler-listen"],
    publicUrl: v["public-url"] ? httpUrl("--public-url", v["public-url"]) : undefined,
    withNscToken: nsc.kind !== "none",
    nscBinary: v.nsc === "nsc" ? undefined : v.nsc.includes("/") ? resolve(v.nsc) : v.nsc,
    region: v.region,
    statePath: v["state-path"],
  };
  const names: string[] = [FILES.dispatcherConfig, FILES.autoscalerConfig, FILES.forgejoToken, FILES.webhookSecret, FILES.dispatcherToken];
  if (nsc.kind !== "none") names.push(FILES.nscToken);
  return { out, configDir, render, pat, nsc, timeoutMs, names };
}

async function readPassword(v: Values, io: CliIo, user: string): Promise<string> {
  if (v["forgejo-password-file"]) return readSecretFile(v["forgejo-password-file"], `the password of ${user}`, "--forgejo-password-file");
  if (v["forgejo-password-stdin"]) return readSecretStdin(io.stdin, `the password of ${user}`);
  const env = io.env.FORGEJO_PASSWORD;
  if (env && env.trim() !== "") return env.trim();
  throw new CliError(
    `no password for Forgejo user "${user}": pass --forgejo-password-file <file>, pipe it with --forgejo-password-stdin, or set FORGEJO_PASSWORD`,
  );
}

function isPrivateHost(url: string): boolean {
  const h = new URL(url).hostname.replace(/^\[|\]$/g, "");
  return (
    isLoopbackHost(h) ||
    /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(h) ||
    h.endsWith(".local") ||
    h.endsWith(".internal") ||
    !h.includes(".")
  );
}

export async function provisionCommand(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, OPTIONS, PROVISION_USAGE);
  if (v.help) {
    io.out(PROVISION_USAGE);
    return 0;
  }
  noPositionals(positionals, PROVISION_USAGE);
  const p = plan(v, io);

  // Everything that can fail without side effects comes first: the directory, conflicts, inputs, reachability.
  const dirState = await prepareOutDir(p.out);
  try {
    await provisionInto(p, v, io, dirState);
  } catch (err) {
    // A directory this run created is removed again if nothing landed in it.
    if (dirState.created) await removeIfEmpty(p.out);
    throw err;
  }
  return 0;
}

async function provisionInto(p: Plan, v: Values, io: CliIo, dirState: { tightenedFrom?: number }): Promise<void> {
  if (dirState.tightenedFrom !== undefined) io.err(`note: ${p.out} was mode ${dirState.tightenedFrom.toString(8)}; changed it to 700\n`);
  if (!v.force) {
    const clash = await existingFiles(p.out, p.names);
    if (clash.length > 0) {
      throw new CliError(
        `refusing to overwrite ${clash.map((c) => join(p.out, c)).join(", ")}: pass --force to replace them ` +
          `(then also delete the old Forgejo and Namespace tokens they held), or choose another --out`,
      );
    }
  }
  // The configs are rendered and validated once with placeholder secrets, so a bad flag value fails
  // here, before a token is created anywhere.
  const preflight = await makeStaging(p.out);
  try {
    await stageFiles(p, io, preflight, "placeholder-forgejo-token", p.nsc.kind === "none" ? undefined : '{"bearer_token": "placeholder"}');
  } finally {
    await removeStaging(preflight);
  }
  const password = p.pat.kind === "mint" ? await readPassword(v, io, p.pat.user) : undefined;
  const givenPat = p.pat.kind === "file" ? await readSecretFile(p.pat.path, "the Forgejo token", "--forgejo-token-file") : undefined;
  const givenNsc = p.nsc.kind === "file" ? await readNscTokenFile(p.nsc.path, "--nsc-token-file") : undefined;

  const server = await forgejoVersion(p.render.forgejoUrl, p.timeoutMs);
  const nscRun: NscRun = { nsc: v.nsc, env: io.env, timeoutMs: p.timeoutMs };
  if (p.nsc.kind === "create" || p.nsc.kind === "dev") await checkNscLogin(nscRun);

  const staging = await makeStaging(p.out);
  const summary: string[] = [];
  let minted: string | undefined;
  try {
    const pat = await obtainForgejoToken(p, v, password, givenPat);
    minted = pat.minted;
    summary.push(pat.summary);
    if (!v["skip-verify"]) {
      const problem = await checkPatForScope(p.render.forgejoUrl, pat.token, p.render.scope, server, p.timeoutMs);
      if (problem) {
        throw new CliError(
          `the Forgejo token does not work for ${scopeKey(p.render.scope)}: ${problem}. The daemons need ${patScopesFor(p.render.scope).join(", ")} ` +
            `and a user who is ${roleFor(p.render.scope)}; fix that, or pass --skip-verify to write the files anyway.`,
        );
      }
    }
    const nscToken = await obtainNscToken(p, v, io, nscRun, staging, givenNsc);
    summary.push(nscToken.summary);
    await stageFiles(p, io, staging, pat.token, nscToken.json);
  } catch (err) {
    await removeStaging(staging);
    if (!(err instanceof CliError)) throw err;
    const who = p.pat.kind === "mint" ? p.pat.user : "its user";
    const cleanup = minted
      ? ` The Forgejo token "${minted}" was already created: delete it in Settings → Applications of ${who}, or reuse it with --forgejo-token-file.`
      : "";
    throw new CliError(`${err.message}\nNothing was written.${cleanup}`);
  }
  try {
    await commitFiles(staging, p.out, p.names, v.force);
  } finally {
    await removeStaging(staging);
  }
  if (v.force) await removeUnnamed(p, io);

  printSummary(io, p, server, summary);
}

/** With --force, a file of an earlier run that the new configs no longer name (nsc-token.json after --nsc-token none) goes too. */
async function removeUnnamed(p: Plan, io: CliIo): Promise<void> {
  for (const name of await removeFiles(
    p.out,
    Object.values(FILES).filter((n) => !p.names.includes(n)),
  )) {
    const revoke = name === FILES.nscToken ? "; if it held a revocable token, revoke it (nsc token list / nsc token revoke)" : "";
    io.err(`note: removed ${join(p.out, name)}: the new configs do not use it${revoke}\n`);
  }
}

async function obtainForgejoToken(p: Plan, v: Values, password: string | undefined, given: string | undefined) {
  if (p.pat.kind === "file") return { token: given as string, minted: undefined, summary: `Forgejo token: taken from ${p.pat.path}` };
  const minted = await mintPat({
    baseUrl: p.render.forgejoUrl,
    user: p.pat.user,
    password: password as string,
    otp: v["forgejo-otp"],
    name: p.pat.patName,
    scopes: patScopesFor(p.render.scope),
    timeoutMs: p.timeoutMs,
  });
  return {
    token: minted.token,
    minted: minted.name,
    summary: `Forgejo token: created "${minted.name}" for user ${p.pat.user} with scope ${minted.scopes.join(", ")}`,
  };
}

async function obtainNscToken(
  p: Plan,
  v: Values,
  io: CliIo,
  run: NscRun,
  staging: string,
  given: string | undefined,
): Promise<{ json?: string | undefined; summary: string }> {
  switch (p.nsc.kind) {
    case "create": {
      const name = v["nsc-token-name"] ?? `forgejo-nsc-${stamp(io.now())}`;
      const json = await createNscToken(run, {
        name,
        expiresIn: v["nsc-token-expires"],
        grants: v["nsc-grant"]?.length ? v["nsc-grant"] : [DEFAULT_NSC_GRANT],
        user: v["nsc-token-user"],
        out: join(staging, "nsc-token.created.json"),
      });
      return { json, summary: `Namespace token: created "${name}" (revocable, expires in ${v["nsc-token-expires"]})` };
    }
    case "dev": {
      const json = await devNscToken(run, join(staging, "nsc-dev-token.raw"));
      io.err(
        "warning: a token from nsc auth generate-dev-token expires in about an hour when you are logged in with a session; " +
          "the dispatcher will then fail to launch runners. Use --nsc-token create for a service.\n",
      );
      return { json, summary: "Namespace token: dev token from nsc auth generate-dev-token (expires in about an hour)" };
    }
    case "file":
      return { json: given, summary: `Namespace token: taken from ${p.nsc.path}` };
    case "none":
      return { summary: "Namespace token: none written; nsc will use the login of the user running the dispatcher" };
  }
}

/** Secrets into staging, then the configs, checked with the daemons' own loader against the staged files. */
async function stageFiles(p: Plan, io: CliIo, staging: string, forgejoToken: string, nscJson: string | undefined): Promise<void> {
  const secrets: [string, string][] = [
    [FILES.forgejoToken, `${forgejoToken}\n`],
    [FILES.webhookSecret, `${newWebhookSecret()}\n`],
    [FILES.dispatcherToken, `${newApiToken()}\n`],
  ];
  if (nscJson !== undefined) secrets.push([FILES.nscToken, nscJson]);
  for (const [name, content] of secrets) await writePrivateFile(join(staging, name), content);
  const at = io.now();
  validateRendered("dispatcher", renderDispatcherYaml(p.render, staging, at));
  validateRendered("autoscaler", renderAutoscalerYaml(p.render, staging, at));
  await writePrivateFile(join(staging, FILES.dispatcherConfig), renderDispatcherYaml(p.render, p.configDir, at));
  await writePrivateFile(join(staging, FILES.autoscalerConfig), renderAutoscalerYaml(p.render, p.configDir, at));
}

function printSummary(io: CliIo, p: Plan, server: ServerInfo, summary: string[]): void {
  const r = p.render;
  const file = (n: string) => join(p.configDir, n);
  let out = `Wrote ${p.names.length} files to ${p.out} (directory 0700, files 0600):\n`;
  for (const n of p.names) out += `  ${join(p.out, n)}\n`;
  out += `\n${describeServer(server)} at ${r.forgejoUrl}, scope ${scopeKey(r.scope)}, labels ${r.labels.join(",")}\n`;
  for (const s of summary) out += `${s}\n`;
  if (p.configDir !== p.out) out += `\nThe configs refer to ${p.configDir}: copy every file there, keeping the modes.\n`;
  const warnings: string[] = [];
  if (!r.runnerUrl && isPrivateHost(r.forgejoUrl)) {
    warnings.push(
      `${r.forgejoUrl} looks internal, but runners on Namespace Cloud must reach Forgejo: pass --forgejo-runner-url <public URL> (forgejo.instance_url) unless they can`,
    );
  }
  if (!server.jobsApi) {
    warnings.push(
      `${describeServer(server)} has no Actions job search (Forgejo 11 / Gitea 1.24 added it): the autoscaler cannot see waiting jobs; only dispatches through the dispatcher API will work`,
    );
  }
  const hook = webhookUrl(r);
  out += `\nNext steps:\n`;
  out += `  1. Start the dispatcher:   forgejo-nsc-dispatcher --config ${file(FILES.dispatcherConfig)}\n`;
  out += `  2. Start the autoscaler:   forgejo-nsc-autoscaler --config ${file(FILES.autoscalerConfig)}\n`;
  if (r.publicUrl) {
    out += `  3. The autoscaler creates the webhook ${hook} at ${scopeKey(r.scope)} itself when it starts.\n`;
  } else {
    out += `  3. Webhook (optional; Forgejo is polled either way): add a Forgejo webhook at ${scopeKey(r.scope)} with\n`;
    out += `     target URL ${hook} (replace the host with the autoscaler's address as Forgejo reaches it,\n`;
    out += `     or rerun with --public-url), content type application/json, and as secret the content of\n`;
    out += `     ${file(FILES.webhookSecret)}.\n`;
  }
  out += `  4. Check:                  forgejo-nsc status --token-file ${file(FILES.dispatcherToken)}\n`;
  if (warnings.length) out += `\nWarnings:\n${warnings.map((w) => `  - ${w}\n`).join("")}`;
  io.out(out);
}
