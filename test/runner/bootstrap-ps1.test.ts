import { describe, expect, it } from "vitest";
import {
  buildPs1Bootstrap,
  buildPs1Launcher,
  buildPs1Prelude,
  chunkCommands,
  payloadFileName,
  psQuote,
  windowsArg,
  windowsRunnerDir,
} from "../../src/runner/bootstrap-ps1.js";
import type { Ps1BootstrapOptions } from "../../src/runner/bootstrap-ps1.js";

// pwsh is not installed here, so the scripts cannot run. Instead the quoting is checked against a
// model of PowerShell's tokenizer (single-quoted strings: any of ' ‘ ’ ‚ ‛ opens/closes, a doubled
// quote character stands for its second character) and of the Windows command-line splitter.

const SQ = new Set(["'", "\u2018", "\u2019", "\u201A", "\u201B"]);
const DQ = new Set(['"', "\u201C", "\u201D", "\u201E"]);

/** PowerShell's scan of a single-quoted literal opening at src[i]. */
function scanSingleQuoted(src: string, i: number): { value: string; end: number } {
  if (!SQ.has(src[i]!)) throw new Error(`no single quote at ${i}`);
  let j = i + 1;
  let value = "";
  for (;;) {
    if (j >= src.length) throw new Error("unterminated single-quoted string");
    const c = src[j]!;
    if (SQ.has(c)) {
      if (j + 1 < src.length && SQ.has(src[j + 1]!)) {
        value += src[j + 1]!;
        j += 2;
        continue;
      }
      return { value, end: j + 1 };
    }
    value += c;
    j++;
  }
}

/**
 * Splits a script into what PowerShell evaluates (code, double-quoted strings included, since they
 * expand) and the values of its single-quoted literals (which never expand).
 */
function lex(src: string): { code: string; literals: string[] } {
  let code = "";
  const literals: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (SQ.has(c)) {
      const { value, end } = scanSingleQuoted(src, i);
      literals.push(value);
      code += "''";
      i = end;
    } else if (DQ.has(c)) {
      let j = i + 1;
      while (j < src.length && !(DQ.has(src[j]!) && !DQ.has(src[j + 1] ?? "")))
        j += src[j] === "`" || (DQ.has(src[j]!) && DQ.has(src[j + 1] ?? "")) ? 2 : 1;
      code += src.slice(i, j + 1);
      i = j + 1;
    } else if (c === "#") {
      while (i < src.length && src[i] !== "\n") i++;
    } else {
      code += c;
      i++;
    }
  }
  return { code, literals };
}

/** CommandLineToArgvW / MSVC runtime splitting (the rules since VS 2008). */
function splitWindowsCommandLine(line: string): string[] {
  const args: string[] = [];
  let cur = "";
  let inArg = false;
  let quoted = false;
  for (let i = 0; i < line.length;) {
    const c = line[i]!;
    if (!quoted && (c === " " || c === "\t")) {
      if (inArg) args.push(cur);
      cur = "";
      inArg = false;
      i++;
      continue;
    }
    inArg = true;
    if (c === "\\") {
      let n = 0;
      while (line[i] === "\\") {
        n++;
        i++;
      }
      if (line[i] === '"') {
        cur += "\\".repeat(Math.floor(n / 2));
        if (n % 2 === 1) {
          cur += '"';
          i++;
        }
      } else {
        cur += "\\".repeat(n);
      }
      continue;
    }
    if (c === '"') {
      if (quoted && line[i + 1] === '"') {
        cur += '"';
        i += 2;
        continue;
      }
      quoted = !quoted;
      i++;
      continue;
    }
    cur += c;
    i++;
  }
  if (inArg) args.push(cur);
  return args;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("psQuote", () => {
  it("round-trips every UTF-16 code unit, alone and next to quotes", () => {
    for (let code = 1; code <= 0xffff; code++) {
      const c = String.fromCharCode(code);
      for (const value of [c, `a${c}b${c}${c}`, `'${c}’`]) {
        const lit = psQuote(value);
        const { value: parsed, end } = scanSingleQuoted(`${lit} + $tail`, 0);
        if (parsed !== value || end !== lit.length)
          throw new Error(`U+${code.toString(16)}: ${JSON.stringify(value)} → ${JSON.stringify(lit)} → ${JSON.stringify(parsed)}`);
      }
    }
  });

  it("round-trips random hostile strings", () => {
    const alphabet = [
      "'",
      "‘",
      "’",
      "‚",
      "‛",
      '"',
      "“",
      "”",
      "$",
      "`",
      "(",
      ")",
      "{",
      "}",
      ";",
      "|",
      "&",
      "\n",
      "\r",
      " ",
      "#",
      "@",
      "a",
      "\\",
      "\u2028",
      "😀",
    ];
    const next = rng(42);
    for (let n = 0; n < 20_000; n++) {
      let v = "";
      const len = Math.floor(next() * 16);
      for (let k = 0; k < len; k++) v += alphabet[Math.floor(next() * alphabet.length)]!;
      const lit = psQuote(v);
      const { value, end } = scanSingleQuoted(lit, 0);
      expect(value).toBe(v);
      expect(end).toBe(lit.length);
    }
  });

  it("would catch the classic mistake of doubling only the ASCII quote", () => {
    const naive = (v: string) => `'${v.replace(/'/g, "''")}'`;
    const v = "it’s $(whoami)";
    expect(scanSingleQuoted(naive(v), 0).value).not.toBe(v);
    expect(scanSingleQuoted(psQuote(v), 0).value).toBe(v);
  });

  it("refuses NUL", () => {
    expect(() => psQuote("a\0b")).toThrow(/NUL/);
  });
});

describe("windowsArg", () => {
  it("survives CommandLineToArgvW for random arguments with quotes, backslashes and spaces", () => {
    const alphabet = ["\\", '"', " ", "\t", "a", "'", "^", "&", "%", "é"];
    const next = rng(7);
    for (let n = 0; n < 20_000; n++) {
      const argv: string[] = [];
      const count = 1 + Math.floor(next() * 4);
      for (let a = 0; a < count; a++) {
        let v = "";
        const len = Math.floor(next() * 10);
        for (let k = 0; k < len; k++) v += alphabet[Math.floor(next() * alphabet.length)]!;
        argv.push(v);
      }
      expect(splitWindowsCommandLine(argv.map(windowsArg).join(" "))).toEqual(argv);
    }
  });

  it("leaves plain words alone and quotes the rest", () => {
    expect(windowsArg("one-job")).toBe("one-job");
    expect(windowsArg("")).toBe('""');
    expect(windowsArg("a b")).toBe('"a b"');
    expect(windowsArg('say "hi"')).toBe('"say \\"hi\\""');
    expect(windowsArg("C:\\dir with space\\")).toBe('"C:\\dir with space\\\\"');
  });
});

const MARK = "PWNED";
const WIN_URL = "https://forgejo.example/api/packages/ops/generic/forgejo-runner/12.13.2/forgejo-runner-12.13.2-windows-amd64.exe";
const WIN_SHA = "AB".repeat(32);
function hostileOptions(over: Partial<Ps1BootstrapOptions> = {}): Ps1BootstrapOptions {
  return {
    runnerName: "nscloud-win1",
    labels: [`lab$(${MARK})`, `q'uo’te"${MARK}`, `back\`${MARK}\``, "namespace-profile-windows-large", `nl\n${MARK}:host`],
    executor: "host",
    mode: "one-job",
    credentials: { mode: "ephemeral", instanceUrl: `https://forgejo.example/'$(${MARK})`, uuid: `uuid’; ${MARK}` },
    jobHandle: `h'); ${MARK}; ('`,
    download: { url: WIN_URL, sha256: WIN_SHA },
    envNames: ["FORGEJO_INSTANCE_URL", "FORGEJO_RUNNER_TOKEN", "ODD_NAME"],
    ...over,
  };
}

describe("buildPs1Bootstrap", () => {
  it("keeps every hostile value inside single-quoted literals (ephemeral mode)", () => {
    const o = hostileOptions();
    const script = buildPs1Bootstrap(o);
    const { code, literals } = lex(script);
    expect(code).not.toContain(MARK);
    for (const v of [
      o.credentials.instanceUrl,
      (o.credentials as { uuid: string }).uuid,
      o.jobHandle!,
      `lab$(${MARK}):host`,
      `q'uo’te"${MARK}:host`,
      `nl\n${MARK}:host`,
    ]) {
      expect(literals).toContain(v);
    }
    // runner.yaml is one literal holding JSON with the resolved labels.
    const yaml = literals.find((l) => l.startsWith("{") && l.includes('"runner"'))!;
    expect((JSON.parse(yaml) as { runner: { labels: string[] } }).runner.labels).toEqual([
      `lab$(${MARK}):host`,
      `q'uo’te"${MARK}:host`,
      `back\`${MARK}\`:host`,
      "namespace-profile-windows-large:host",
      `nl\n${MARK}:host`,
    ]);
    expect(script).toContain("Invoke-Runner @('one-job', '--config', 'runner.yaml', '--url', ");
    expect(script).toContain("'--token-url', $tokenUrl");
    expect(code).toContain("[IO.File]::WriteAllText($tokenFile, $env:FORGEJO_RUNNER_TOKEN");
    expect(literals).toContain("--handle");
    expect(code).toContain("Stop-Computer -Force");
    expect(literals).toContain(WIN_URL);
    // The download is checked against the configured SHA-256 (lower case) before it is used.
    expect(literals).toContain(WIN_SHA.toLowerCase());
    expect(code).toContain("$got = (Get-FileHash -Algorithm SHA256 -LiteralPath $download).Hash.ToLowerInvariant()");
    expect(script.indexOf("if ($got -ne $want)")).toBeLessThan(script.indexOf("Expand-Archive"));
    // Pinned one-job keeps polling: --wait beside --handle.
    expect(script).toMatch(/'--handle', '[^\n]*', '--wait'\)/);
    expect(literals).toEqual(expect.arrayContaining(["FORGEJO_INSTANCE_URL", "FORGEJO_RUNNER_TOKEN", "ODD_NAME"]));
    expect(literals).toContain("C:\\forgejo-nsc\\nscloud-win1");
  });

  it("token mode registers with the token from the environment, then removes it", () => {
    const script = buildPs1Bootstrap(
      hostileOptions({ credentials: { mode: "token", instanceUrl: "https://f" }, mode: "daemon", shutdownWhenDone: false }),
    );
    const { code, literals } = lex(script);
    expect(code).not.toContain(MARK);
    expect(script).toContain("'--token', $env:FORGEJO_RUNNER_TOKEN, '--name', 'nscloud-win1'");
    expect(script.indexOf("Remove-Item -Path Env:\\FORGEJO_RUNNER_TOKEN")).toBeGreaterThan(script.indexOf("'--token'"));
    expect(literals).toContain("daemon");
    expect(literals).not.toContain("--handle");
    expect(code).not.toContain("Stop-Computer");
    expect(script).toContain(WIN_URL);
    expect(script).not.toContain("code.forgejo.org/forgejo/runner/releases");
  });

  it("tries to destroy its own instance with the image's nsc before shutting down", () => {
    const script = buildPs1Bootstrap(hostileOptions({ selfDestroy: { instanceId: "abc123def4567", region: "ord4" } }));
    expect(script).toContain(
      "if ($nsc) { try { & $nsc.Source @('--region', 'ord4', 'destroy', '--force', 'abc123def4567') *> $null } catch { } }",
    );
    expect(script.indexOf("'destroy', '--force'")).toBeLessThan(script.indexOf("Stop-Computer -Force"));
    expect(script.indexOf("'destroy', '--force'")).toBeGreaterThan(
      script.indexOf("Set-Content -LiteralPath (Join-Path $Dir 'exit-status')"),
    );
    expect(buildPs1Bootstrap(hostileOptions())).not.toContain("'destroy'");
  });

  it("refuses runner names that are not safe directory names, and comma labels", () => {
    expect(() => windowsRunnerDir("a\\..\\b")).toThrow(/Windows directory name/);
    expect(() => buildPs1Bootstrap(hostileOptions({ runnerName: "x y" }))).toThrow(/Windows directory name/);
    expect(() => buildPs1Bootstrap(hostileOptions({ labels: ["a,b"] }))).toThrow(/comma/);
  });
});

describe("buildPs1Launcher, chunks and prelude", () => {
  it("embeds the bootstrap as one literal and names, never values, of the environment", () => {
    const bootstrap = buildPs1Bootstrap(hostileOptions());
    const launcher = buildPs1Launcher({
      runnerName: "nscloud-win1",
      bootstrap,
      envNames: ["FORGEJO_RUNNER_TOKEN", "X"],
      ttlMs: 90 * 60_000,
    });
    const { code, literals } = lex(launcher);
    expect(literals).toContain(bootstrap);
    expect(code).not.toContain(MARK);
    expect(literals).toEqual(expect.arrayContaining(["FORGEJO_RUNNER_TOKEN", "X", "forgejo-nsc-nscloud-win1"]));
    expect(code).toContain("GetEnvironmentVariable($name)");
    expect(code).toContain("-LogonType S4U");
    expect(code).toContain("New-TimeSpan -Seconds 5400");
    expect(code).toContain("SetAccessRuleProtection($true, $false)");
  });

  it("splits the launcher into cmd echo commands that fit cmd's line limit and decode back", () => {
    const script = "x".repeat(30_000) + "ünïcødé ’";
    const file = payloadFileName("nscloud-win1");
    const cmds = chunkCommands(script, file);
    expect(cmds.length).toBeGreaterThan(3);
    for (const c of cmds) expect(c.length).toBeLessThan(8191 - 20);
    expect(cmds[0]).toMatch(/^echo [A-Za-z0-9+/=]+ > "%TEMP%\\forgejo-nsc-nscloud-win1\.b64"$/);
    for (const c of cmds.slice(1)) expect(c).toMatch(/ >> "%TEMP%\\forgejo-nsc-nscloud-win1\.b64"$/);
    const b64 = cmds.map((c) => /^echo (\S+) /.exec(c)![1]).join("");
    expect(Buffer.from(b64, "base64").toString("utf8")).toBe(script);
  });

  it("the prelude reads that file, runs it and reports failure as exit 1", () => {
    const prelude = buildPs1Prelude("forgejo-nsc-r.b64");
    const { code, literals } = lex(prelude);
    expect(literals).toContain("forgejo-nsc-r.b64");
    expect(code).toContain("[ScriptBlock]::Create($text)");
    expect(code).toContain("exit 1");
  });
});
