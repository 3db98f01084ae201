import type { z } from "zod";
import { HttpFailure, callJson } from "../http.js";
import type { HttpFailureKind } from "../http.js";
import { autoscalerStatusSchema } from "./autoscaler-types.js";
import type { AutoscalerStatus } from "./autoscaler-types.js";
import { runnerDetailSchema, runnerListSchema } from "./dispatcher-types.js";
import type { RunnerDetail, RunnerSummary } from "./dispatcher-types.js";

export type DaemonName = "dispatcher" | "autoscaler";

/** One daemon's answer, or why there is none and what to do about it. */
export type DaemonResult<T> =
  | { daemon: DaemonName; url: string; ok: true; data: T }
  | { daemon: DaemonName; url: string; ok: false; error: string; hint: string; status?: number; kind?: HttpFailureKind | "shape" };

export interface Endpoint {
  daemon: DaemonName;
  url: string;
  token?: string | undefined;
  timeoutMs: number;
}

const BINARY: Record<DaemonName, string> = { dispatcher: "forgejo-nsc-dispatcher", autoscaler: "forgejo-nsc-autoscaler" };
const URL_FLAG: Record<DaemonName, string> = { dispatcher: "--dispatcher", autoscaler: "--autoscaler" };

function hintFor(ep: Endpoint, f: HttpFailure): string {
  const flag = URL_FLAG[ep.daemon];
  switch (f.kind) {
    case "bad_url":
      return `pass ${flag} <url>, e.g. ${flag} http://127.0.0.1:${ep.daemon === "dispatcher" ? 8080 : 8081}`;
    case "unreachable":
    case "timeout":
      return `is ${BINARY[ep.daemon]} running and listening there? Pass ${flag} <url> matching the listen key of its config, or ${flag} none to skip it`;
    case "not_json":
      return `that URL does not look like the ${ep.daemon}; check ${flag}`;
    case "status":
      if (f.status === 401) {
        return ep.token
          ? `the ${ep.daemon} rejected the token: pass --token-file with one of the tokens in its auth.tokens / auth.tokens_file`
          : `the ${ep.daemon} requires a token: pass --token-file <file> (or set FORGEJO_NSC_TOKEN) with one of its auth.tokens`;
      }
      if (f.status === 404) return `no such API at that URL: is ${flag} pointing at the ${ep.daemon} (and not the other daemon)?`;
      return `see the ${ep.daemon}'s log for details`;
  }
}

async function getParsed<S extends z.ZodType>(ep: Endpoint, path: string, schema: S): Promise<DaemonResult<z.output<S>>> {
  const base = ep.url.replace(/\/+$/, "");
  try {
    const { body } = await callJson(`${base}${path}`, {
      timeoutMs: ep.timeoutMs,
      headers: ep.token ? { authorization: `Bearer ${ep.token}` } : {},
    });
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const where = first ? first.path.join(".") || "(root)" : "(root)";
      return {
        daemon: ep.daemon,
        url: ep.url,
        ok: false,
        kind: "shape",
        error: `${base}${path} answered with an unexpected shape (${where}: ${first?.message ?? "invalid"})`,
        hint: `is ${URL_FLAG[ep.daemon]} pointing at the ${ep.daemon}, and are the CLI and the daemon the same version?`,
      };
    }
    return { daemon: ep.daemon, url: ep.url, ok: true, data: parsed.data };
  } catch (err) {
    if (!(err instanceof HttpFailure)) throw err;
    return {
      daemon: ep.daemon,
      url: ep.url,
      ok: false,
      kind: err.kind,
      error: err.message,
      hint: hintFor(ep, err),
      ...(err.status ? { status: err.status } : {}),
    };
  }
}

export async function fetchRunners(ep: Endpoint, states: readonly string[]): Promise<DaemonResult<RunnerSummary[]>> {
  const r = await getParsed(ep, `/api/v1/runners?state=${states.map(encodeURIComponent).join(",")}`, runnerListSchema);
  return r.ok ? { ...r, data: r.data.runners } : r;
}

export async function fetchRunner(ep: Endpoint, name: string): Promise<DaemonResult<RunnerDetail>> {
  return getParsed(ep, `/api/v1/runners/${encodeURIComponent(name)}`, runnerDetailSchema);
}

export async function fetchAutoscalerStatus(ep: Endpoint): Promise<DaemonResult<AutoscalerStatus>> {
  return getParsed(ep, "/api/v1/status", autoscalerStatusSchema);
}
