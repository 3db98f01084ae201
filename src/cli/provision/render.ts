import { join } from "node:path";
import { stringify } from "yaml";
import { autoscalerConfigSchema } from "../../config/autoscaler-schema.js";
import { splitListen } from "../../config/common.js";
import { dispatcherConfigSchema } from "../../config/dispatcher-schema.js";
import { ConfigError, parseConfig } from "../../config/load.js";
import type { Scope } from "../../forgejo/scope.js";
import { CliError } from "../errors.js";

/** File names inside --out; the configs point at the secret files through *_file keys. */
export const FILES = {
  dispatcherConfig: "dispatcher.yaml",
  autoscalerConfig: "autoscaler.yaml",
  forgejoToken: "forgejo-token",
  webhookSecret: "webhook-secret",
  dispatcherToken: "dispatcher-token",
  nscToken: "nsc-token.json",
} as const;

export interface RenderInput {
  forgejoUrl: string;
  /** forgejo.instance_url: what runners on Namespace dial back to, when it differs from forgejoUrl. */
  runnerUrl?: string | undefined;
  scope: Scope;
  labels: string[];
  instanceName: string;
  dispatcherListen: string;
  autoscalerListen: string;
  /** The autoscaler's public base URL as Forgejo reaches it; when set, the autoscaler manages the webhook itself. */
  publicUrl?: string | undefined;
  withNscToken: boolean;
  /** namespace.nsc_binary, when provisioning used an nsc other than the one on PATH. */
  nscBinary?: string | undefined;
  region?: string | undefined;
  statePath?: string | undefined;
}

/** The URL of the dispatcher as the autoscaler on the same host reaches it. */
export function localUrl(listen: string): string {
  const { host, port } = splitListen(listen);
  const h = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

export function webhookUrl(input: Pick<RenderInput, "publicUrl" | "autoscalerListen" | "instanceName">): string {
  const base = (input.publicUrl ?? localUrl(input.autoscalerListen)).replace(/\/+$/, "");
  return `${base}/webhook/${input.instanceName}`;
}

function scopeYaml(s: Scope): Record<string, string> {
  const out: Record<string, string> = { level: s.level };
  if (s.owner) out.owner = s.owner;
  if (s.name) out.name = s.name;
  return out;
}

function header(what: string, at: Date): string {
  return (
    `# ${what}, written by forgejo-nsc provision at ${at.toISOString()}.\n` +
    `# Secrets live in the files named by the *_file keys (mode 0600), never in this file.\n` +
    `# Every key and its default: docs/cli.md and the README's configuration reference.\n`
  );
}

export function renderDispatcherYaml(i: RenderInput, dir: string, at: Date): string {
  const namespace: Record<string, unknown> = {};
  if (i.nscBinary) namespace.nsc_binary = i.nscBinary;
  if (i.withNscToken) namespace.token_file = join(dir, FILES.nscToken);
  if (i.region) namespace.region = i.region;
  const doc: Record<string, unknown> = {
    listen: i.dispatcherListen,
    forgejo: {
      base_url: i.forgejoUrl,
      ...(i.runnerUrl ? { instance_url: i.runnerUrl } : {}),
      token_file: join(dir, FILES.forgejoToken),
      default_scope: scopeYaml(i.scope),
      default_labels: i.labels,
    },
    namespace,
    ...(i.statePath ? { dispatcher: { state_path: i.statePath } } : {}),
    auth: { tokens_file: join(dir, FILES.dispatcherToken) },
  };
  return header("forgejo-nsc dispatcher configuration", at) + stringify(doc);
}

export function renderAutoscalerYaml(i: RenderInput, dir: string, at: Date): string {
  const instance: Record<string, unknown> = {
    name: i.instanceName,
    forgejo: { base_url: i.forgejoUrl, token_file: join(dir, FILES.forgejoToken) },
    scope: scopeYaml(i.scope),
    webhook_secret_file: join(dir, FILES.webhookSecret),
  };
  if (i.publicUrl) instance.webhook = { url: webhookUrl(i) };
  instance.targets = [{ labels: i.labels, min_idle: 0 }];
  const doc = {
    listen: i.autoscalerListen,
    dispatcher: { url: localUrl(i.dispatcherListen), token_file: join(dir, FILES.dispatcherToken) },
    instances: [instance],
    // The same token reads the status API: whoever may call the dispatcher may see the autoscaler's state.
    auth: { tokens_file: join(dir, FILES.dispatcherToken) },
  };
  return header("forgejo-nsc autoscaler configuration", at) + stringify(doc);
}

/**
 * Checks a rendered config with the daemons' own loader: `*_file` secrets are read from `dir`, so
 * the files must already be staged there. Throws CliError listing every problem.
 */
export function validateRendered(kind: "dispatcher" | "autoscaler", text: string): void {
  try {
    if (kind === "dispatcher") parseConfig(dispatcherConfigSchema, text, `the rendered ${FILES.dispatcherConfig}`, {});
    else parseConfig(autoscalerConfigSchema, text, `the rendered ${FILES.autoscalerConfig}`, {});
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new CliError(`${err.message}\nFix the flags that fed these keys and run provision again.`);
    }
    throw err;
  }
}
