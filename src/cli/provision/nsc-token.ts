import { readFile, rm } from "node:fs/promises";
import { execa } from "execa";
import { CliError } from "../errors.js";

/** The grant a dispatcher token needs: create, watch and destroy instances (Namespace docs, nsc token create). */
export const DEFAULT_NSC_GRANT = JSON.stringify({
  resource_type: "instance",
  resource_id: "*",
  actions: ["create", "list", "get", "wait", "destroy"],
});

export interface NscRun {
  nsc: string;
  env: Record<string, string | undefined>;
  timeoutMs: number;
}

/**
 * The `Failed: …` part of nsc's error report (docs/upstream-contracts.md#nsc-error-reports),
 * whitespace collapsed, footer dropped.
 */
export function nscFailure(stderr: string): string {
  const flat = stderr.replace(/\s+/g, " ").trim();
  const m = /Failed: (.*?)(?: =+ | See https:\/\/namespace\.so\/docs| =+$|$)/.exec(flat);
  const text = (m?.[1] ?? flat).replace(/=+/g, "").trim();
  return text.length > 400 ? `${text.slice(0, 400)}…` : text || "no error text";
}

async function runNsc(run: NscRun, args: string[], what: string): Promise<{ stdout: string }> {
  const r = await execa(run.nsc, args, {
    env: { ...run.env, NS_DO_NOT_UPDATE: "1" },
    extendEnv: false,
    reject: false,
    timeout: run.timeoutMs,
    stdin: "ignore",
  });
  if ((r as { code?: string }).code === "ENOENT") {
    throw new CliError(
      `nsc not found at "${run.nsc}": install the Namespace CLI, pass --nsc <path>, or skip the Namespace token with --nsc-token none`,
    );
  }
  if (r.timedOut) throw new CliError(`${what}: nsc did not finish within ${run.timeoutMs} ms`);
  if (r.exitCode !== 0) {
    const why = nscFailure(String(r.stderr ?? ""));
    let todo = "see the nsc message above";
    if (/not logged in|login token expired|session expired|no credentials found/i.test(why))
      todo = "run nsc login as this user first, then retry";
    else if (/not allowed|missing the permission/i.test(why))
      todo = "creating tokens needs a workspace admin; ask one, or pass --nsc-token-user to bind the token to your own membership";
    throw new CliError(`${what} failed (nsc exit ${r.exitCode ?? "?"}): ${why}; ${todo}`);
  }
  return { stdout: String(r.stdout ?? "") };
}

/** `nsc auth check-login`: fails early, before anything is created anywhere, when nsc has no usable login. */
export async function checkNscLogin(run: NscRun): Promise<void> {
  await runNsc(run, ["auth", "check-login", "--duration", "10m"], "checking the Namespace login (nsc auth check-login)");
}

function tokenJson(bearer: string): string {
  return JSON.stringify({ bearer_token: bearer }, null, 2) + "\n";
}

/** Reads a token file nsc wrote or the operator gave: JSON with bearer_token/session_token, or a raw token to wrap. */
export async function readNscTokenFile(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = (await readFile(path, "utf8")).trim();
  } catch (err) {
    throw new CliError(`cannot read the Namespace token from ${path} (${(err as NodeJS.ErrnoException).code ?? "error"}); check ${flag}`);
  }
  if (text === "") throw new CliError(`${path} is empty; ${flag} must name a Namespace token file`);
  if (text.startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CliError(`${path} starts like JSON but is not valid JSON; nsc expects {"bearer_token": "…"}`);
    }
    const p = parsed as { bearer_token?: unknown; session_token?: unknown; tenant_token?: unknown };
    for (const key of ["bearer_token", "session_token", "tenant_token"] as const) {
      const v = p[key];
      if (typeof v === "string" && v.trim() !== "") return JSON.stringify({ [key]: v.trim() }, null, 2) + "\n";
    }
    throw new CliError(`${path} has no bearer_token (or session_token); nsc would answer "not logged in"`);
  }
  // A raw token (generate-dev-token output) is rejected by nsc; wrap it
  // (docs/upstream-contracts.md#nsc-token-file).
  return tokenJson((text.split(/\r?\n/)[0] ?? "").trim());
}

export interface CreateTokenOptions {
  name: string;
  expiresIn: string;
  grants: string[];
  user: boolean;
  /** Where nsc writes the token JSON (a private staging path). */
  out: string;
}

/** `nsc token create … --token_file <out>`; returns the normalised file content. */
export async function createNscToken(run: NscRun, o: CreateTokenOptions): Promise<string> {
  const args = ["token", "create", "--name", o.name, "--expires_in", o.expiresIn, "--token_file", o.out];
  for (const g of o.grants) args.push("--grant", g);
  if (o.user) args.push("--user");
  // stdout (a table, or a note that the token went to the file) is discarded: never echo it.
  await runNsc(run, args, `creating the Namespace token "${o.name}" (nsc token create)`);
  return readNscTokenFile(o.out, "nsc token create --token_file");
}

/** `nsc auth generate-dev-token`, wrapped as {"bearer_token": …}; such tokens last about an hour. */
export async function devNscToken(run: NscRun, rawOut: string): Promise<string> {
  try {
    await runNsc(
      run,
      ["auth", "generate-dev-token", "--output_to", rawOut],
      "generating a Namespace dev token (nsc auth generate-dev-token)",
    );
    return await readNscTokenFile(rawOut, "nsc auth generate-dev-token --output_to");
  } finally {
    await rm(rawOut, { force: true });
  }
}
