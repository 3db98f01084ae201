import type { PublicCredentials } from "./bootstrap-sh.js";
import { resolveLabels } from "./labels.js";

/**
 * PowerShell for Windows runners, as pure builders:
 * - `buildPs1Bootstrap`: the runner script (downloads forgejo-runner, writes runner.yaml, registers
 *   or writes the token file, runs one job, records its exit status, then tries to destroy its own
 *   instance and shuts the machine down);
 * - `buildPs1Launcher`: what runs over WinRM: stores that script and the secrets from the WinRM
 *   shell's environment in a private directory, and starts the script as a scheduled task so it
 *   outlives the WinRM shell;
 * - `buildPs1Prelude` + `chunkCommands`: how the launcher reaches the machine without hitting the
 *   command-line length limit.
 */

/** Characters PowerShell treats as a single quote inside a single-quoted string (its tokenizer's IsSingleQuote). */
const PS_SINGLE_QUOTES = /['\u2018\u2019\u201A\u201B]/g;

/**
 * A PowerShell single-quoted string literal holding exactly `value`. Inside single quotes nothing
 * expands ($, backticks, subexpressions); the only special characters are the quote characters
 * themselves — ASCII ' and the typographic ‘ ’ ‚ ‛ — and each is escaped by doubling it.
 */
export function psQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a PowerShell string cannot carry a NUL character");
  return `'${value.replace(PS_SINGLE_QUOTES, (q) => q + q)}'`;
}

/**
 * One argument of a Windows command line as CommandLineToArgvW / the MSVC runtime split it:
 * wrapped in double quotes when it has whitespace or quotes; backslashes doubled before a quote
 * and at the end. ConvertTo-WinArg in the scripts is the same algorithm in PowerShell.
 */
export function windowsArg(arg: string): string {
  if (arg.length > 0 && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === "\\") {
      backslashes++;
      continue;
    }
    if (ch === '"') {
      out += "\\".repeat(2 * backslashes + 1) + '"';
    } else {
      out += "\\".repeat(backslashes) + ch;
    }
    backslashes = 0;
  }
  return out + "\\".repeat(2 * backslashes) + '"';
}

/** Where a runner lives on the Windows instance; the runner name is checked to be path-safe. */
export function windowsRunnerDir(runnerName: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(runnerName)) {
    throw new Error(`runner name ${JSON.stringify(runnerName)} cannot be a Windows directory name: use letters, digits, ".", "_" and "-"`);
  }
  return `C:\\forgejo-nsc\\${runnerName}`;
}

export interface Ps1BootstrapOptions {
  runnerName: string;
  labels: readonly string[];
  executor: string;
  mode: "one-job" | "daemon";
  credentials: PublicCredentials;
  jobHandle?: string | undefined;
  /**
   * The forgejo-runner binary (or a .zip holding it) and its SHA-256: upstream publishes no Windows
   * build (runner .forgejo/workflows/build-release.yml), so the operator hosts one (runner.binaries.windows_amd64).
   */
  download: { url: string; sha256: string };
  /** Names of the variables the launcher saved to secrets.json (they include FORGEJO_RUNNER_TOKEN). */
  envNames: readonly string[];
  /** Shut the machine down when the job is done (default true). */
  shutdownWhenDone?: boolean | undefined;
  /** When the job is done, try `nsc destroy --force <id>` with the image's nsc (best effort). */
  selfDestroy?: { instanceId: string; region?: string | undefined } | undefined;
}

const TOKEN_ENV = "FORGEJO_RUNNER_TOKEN";

/** ConvertTo-WinArg and Invoke-Runner: the PowerShell side of windowsArg, and a runner invocation that logs and returns the exit code. */
const PS_HELPERS = String.raw`
function ConvertTo-WinArg([string]$a) {
  if ($a.Length -gt 0 -and $a -notmatch '[\s"]') { return $a }
  $sb = New-Object System.Text.StringBuilder
  [void]$sb.Append('"')
  $bs = 0
  foreach ($ch in $a.ToCharArray()) {
    if ($ch -eq [char]'\') { $bs++; continue }
    if ($ch -eq [char]'"') { [void]$sb.Append('\' * (2 * $bs + 1)); [void]$sb.Append('"') }
    else { [void]$sb.Append('\' * $bs); [void]$sb.Append($ch) }
    $bs = 0
  }
  [void]$sb.Append('\' * (2 * $bs))
  [void]$sb.Append('"')
  return $sb.ToString()
}
$script:RunCount = 0
function Invoke-Runner([string[]]$RunnerArgs) {
  $script:RunCount++
  $line = ($RunnerArgs | ForEach-Object { ConvertTo-WinArg $_ }) -join ' '
  $out = Join-Path $Dir ("runner-" + $script:RunCount + ".out")
  $err = Join-Path $Dir ("runner-" + $script:RunCount + ".err")
  $p = Start-Process -FilePath $script:RunnerExe -ArgumentList $line -WorkingDirectory $Dir -NoNewWindow -PassThru -RedirectStandardOutput $out -RedirectStandardError $err
  $null = $p.Handle
  $p.WaitForExit()
  # To the host (and so the transcript), not the pipeline: the function's output is the exit code alone.
  Get-Content -LiteralPath $out, $err -ErrorAction SilentlyContinue | Out-Host
  return $p.ExitCode
}
`;

/** runner.yaml as JSON (valid YAML), the same settings as on Linux and macOS. */
function runnerYamlJson(labels: readonly string[], dir: string): string {
  const config = {
    log: { level: "info" },
    runner: { file: ".runner", capacity: 1, fetch_timeout: "5s", fetch_interval: "2s", report_interval: "1s", labels },
    cache: { enabled: false },
    host: { workdir_parent: `${dir}\\work` },
  };
  return JSON.stringify(config, null, 2).replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * The runner script the scheduled task runs. Secrets are not in it: it reads them from
 * secrets.json (written by the launcher from the WinRM shell's environment, in a directory only
 * SYSTEM, Administrators and the runner account can read) and deletes that file first.
 */
export function buildPs1Bootstrap(o: Ps1BootstrapOptions): string {
  const dir = windowsRunnerDir(o.runnerName);
  const labels = resolveLabels(o.labels, o.executor);
  if (!/^[0-9a-f]{64}$/i.test(o.download.sha256)) throw new Error("runner.binaries.windows_amd64.sha256 must be 64 hex digits");
  const lines: string[] = [
    "# forgejo-nsc Windows runner bootstrap",
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    `$Dir = ${psQuote(dir)}`,
    "Set-Location -LiteralPath $Dir",
    "Start-Transcript -LiteralPath (Join-Path $Dir 'bootstrap.log') -Append | Out-Null",
    "$status = 1",
    "try {",
    ...ps1LoadSecrets(o.envNames),
    ...ps1FetchRunner(o.download),
    "  Write-Output ('forgejo-nsc: using ' + $script:RunnerExe)",
    "  New-Item -ItemType Directory -Force -Path (Join-Path $Dir 'work') | Out-Null",
    `  [IO.File]::WriteAllText((Join-Path $Dir 'runner.yaml'), ${psQuote(runnerYamlJson(labels, dir))}, (New-Object System.Text.UTF8Encoding $false))`,
    ...ps1RunRunner(o, labels),
    "  Write-Output ('forgejo-nsc: forgejo-runner exited with status ' + $status)",
    "} catch {",
    "  Write-Output ('forgejo-nsc: bootstrap failed: ' + $_.Exception.Message)",
    "  $status = 1",
    "} finally {",
    "  Set-Content -LiteralPath (Join-Path $Dir 'exit-status') -Value $status",
    "  Stop-Transcript | Out-Null",
    "}",
    ...ps1AfterJob(o),
    "exit $status",
  ];
  return `${PS_HELPERS.trim()}\n${lines.join("\n")}\n`;
}

/** Inside the script's try: reads secrets.json into the process environment and deletes it; the token must be there. */
function ps1LoadSecrets(envNames: readonly string[]): string[] {
  return [
    "  $secretsFile = Join-Path $Dir 'secrets.json'",
    "  $secrets = Get-Content -LiteralPath $secretsFile -Raw -Encoding UTF8 | ConvertFrom-Json",
    "  Remove-Item -LiteralPath $secretsFile -Force",
    `  foreach ($name in @(${envNames.map(psQuote).join(", ")})) { if ($null -ne $secrets.$name) { [Environment]::SetEnvironmentVariable($name, [string]$secrets.$name, 'Process') } }`,
    `  if (-not $env:${TOKEN_ENV}) { throw 'forgejo-nsc: ${TOKEN_ENV} is missing from secrets.json' }`,
  ];
}

/**
 * Inside the script's try: sets $script:RunnerExe to the image's forgejo-runner.exe, or downloads
 * the configured binary (or .zip holding it), checks its SHA-256 and unpacks it.
 */
function ps1FetchRunner(download: Ps1BootstrapOptions["download"]): string[] {
  return [
    "  [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12",
    "  $found = Get-Command 'forgejo-runner.exe' -ErrorAction SilentlyContinue",
    "  if ($found) { $script:RunnerExe = $found.Source } else {",
    `    $url = ${psQuote(download.url)}`,
    "    $download = Join-Path $Dir 'forgejo-runner.download'",
    "    Write-Output ('forgejo-nsc: downloading ' + $url)",
    "    Invoke-WebRequest -Uri $url -OutFile $download -UseBasicParsing",
    `    $want = ${psQuote(download.sha256.toLowerCase())}`,
    "    $got = (Get-FileHash -Algorithm SHA256 -LiteralPath $download).Hash.ToLowerInvariant()",
    "    if ($got -ne $want) {",
    "      Remove-Item -LiteralPath $download -Force",
    "      throw ('forgejo-nsc: checksum mismatch for ' + $url + ': the file has SHA-256 ' + $got + ', runner.binaries.windows_amd64.sha256 says ' + $want)",
    "    }",
    "    $head = [IO.File]::ReadAllBytes($download)[0..1]",
    "    $bin = Join-Path $Dir 'bin'",
    "    New-Item -ItemType Directory -Force -Path $bin | Out-Null",
    "    if ($head[0] -eq 0x50 -and $head[1] -eq 0x4B) {",
    "      Expand-Archive -LiteralPath $download -DestinationPath $bin -Force",
    "      $exe = Get-ChildItem -LiteralPath $bin -Recurse -Filter 'forgejo-runner*.exe' | Select-Object -First 1",
    "      if (-not $exe) { throw ('forgejo-nsc: no forgejo-runner*.exe in ' + $url) }",
    "      $script:RunnerExe = $exe.FullName",
    "    } else {",
    "      $script:RunnerExe = Join-Path $bin 'forgejo-runner.exe'",
    "      Move-Item -LiteralPath $download -Destination $script:RunnerExe -Force",
    "    }",
    "  }",
  ];
}

/**
 * Inside the script's try: runs forgejo-runner (one-job or daemon) and sets $status to its exit
 * code; with a registration token it registers first, with ephemeral credentials it passes the
 * token through a file. Either way the token leaves the environment before the runner runs a job.
 */
function ps1RunRunner(o: Ps1BootstrapOptions, labels: readonly string[]): string[] {
  const q = psQuote;
  const verb = o.mode === "daemon" ? "daemon" : "one-job";
  if (o.credentials.mode === "token") {
    return [
      `  $reg = Invoke-Runner @('register', '--no-interactive', '--instance', ${q(o.credentials.instanceUrl)}, '--token', $env:${TOKEN_ENV}, '--name', ${q(o.runnerName)}, '--labels', ${q(labels.join(","))}, '--config', 'runner.yaml')`,
      `  Remove-Item -Path Env:\\${TOKEN_ENV}`,
      "  if ($reg -ne 0) { throw ('forgejo-nsc: forgejo-runner register failed with exit code ' + $reg) }",
      `  $status = Invoke-Runner @('${verb}', '--config', 'runner.yaml')`,
    ];
  }
  const labelArgs = labels.map((l) => `'--label', ${q(l)}`).join(", ");
  // --wait with --handle: without it one fetch that brings no task ends one-job with exit 2 (runner poll/single.go).
  const handle = o.mode === "one-job" ? `${o.jobHandle ? `, '--handle', ${q(o.jobHandle)}` : ""}, '--wait'` : "";
  return [
    "  $tokenFile = Join-Path $Dir 'runner-token'",
    `  [IO.File]::WriteAllText($tokenFile, $env:${TOKEN_ENV}, (New-Object System.Text.UTF8Encoding $false))`,
    `  Remove-Item -Path Env:\\${TOKEN_ENV}`,
    "  $tokenUrl = ([Uri]$tokenFile).AbsoluteUri",
    `  $status = Invoke-Runner @('${verb}', '--config', 'runner.yaml', '--url', ${q(o.credentials.instanceUrl)}, '--uuid', ${q(o.credentials.uuid)}, '--token-url', $tokenUrl, ${labelArgs}${handle})`,
  ];
}

/** After the job: the self-destroy attempt and the shutdown, each if asked. */
function ps1AfterJob(o: Ps1BootstrapOptions): string[] {
  const lines: string[] = [];
  if (o.selfDestroy) {
    const region = o.selfDestroy.region ? `'--region', ${psQuote(o.selfDestroy.region)}, ` : "";
    lines.push(
      "# The instance has done its one job: end it now if the image's nsc (workload identity) may; best effort.",
      "$nsc = Get-Command 'nsc.exe' -ErrorAction SilentlyContinue",
      `if ($nsc) { try { & $nsc.Source @(${region}'destroy', '--force', ${psQuote(o.selfDestroy.instanceId)}) *> $null } catch { } }`,
    );
  }
  if (o.shutdownWhenDone !== false) {
    lines.push("# Otherwise shut down; supervision (or the TTL) removes the instance.", "Stop-Computer -Force");
  }
  return lines;
}

export interface Ps1LauncherOptions {
  runnerName: string;
  bootstrap: string;
  /** Variables the WinRM shell's environment carries and the runner script needs (secrets among them). */
  envNames: readonly string[];
  /** Scheduled task time limit. */
  ttlMs: number;
}

/**
 * Runs over WinRM, once. Creates the runner directory with an ACL limited to SYSTEM,
 * Administrators and the current account, writes the runner script and secrets.json (the named
 * variables, read from this shell's environment — never from this text), registers a scheduled
 * task (S4U: runs as this account without storing its password, and survives the WinRM shell) and
 * starts it. Errors are thrown; the prelude turns them into the exit code.
 */
export function buildPs1Launcher(o: Ps1LauncherOptions): string {
  const dir = windowsRunnerDir(o.runnerName);
  const q = psQuote;
  const task = `forgejo-nsc-${o.runnerName}`;
  const limitSec = Math.max(60, Math.ceil(o.ttlMs / 1000));
  return [
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    `$Dir = ${q(dir)}`,
    "$me = [System.Security.Principal.WindowsIdentity]::GetCurrent().Name",
    "New-Item -ItemType Directory -Force -Path $Dir | Out-Null",
    "$acl = New-Object System.Security.AccessControl.DirectorySecurity",
    "$acl.SetAccessRuleProtection($true, $false)",
    "foreach ($id in @('NT AUTHORITY\\SYSTEM', 'BUILTIN\\Administrators', $me)) {",
    "  $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($id, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')))",
    "}",
    "Set-Acl -LiteralPath $Dir -AclObject $acl",
    // A BOM so Windows PowerShell 5.1 reads the script as UTF-8.
    `[IO.File]::WriteAllText((Join-Path $Dir 'bootstrap.ps1'), ${q(o.bootstrap)}, (New-Object System.Text.UTF8Encoding $true))`,
    "$secrets = @{}",
    `foreach ($name in @(${o.envNames.map(q).join(", ")})) { $secrets[$name] = [Environment]::GetEnvironmentVariable($name) }`,
    "[IO.File]::WriteAllText((Join-Path $Dir 'secrets.json'), ($secrets | ConvertTo-Json -Compress), (New-Object System.Text.UTF8Encoding $false))",
    `$action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "' + (Join-Path $Dir 'bootstrap.ps1') + '"') -WorkingDirectory $Dir`,
    "$principal = New-ScheduledTaskPrincipal -UserId $me -LogonType S4U -RunLevel Highest",
    `$settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Seconds ${limitSec})`,
    `Register-ScheduledTask -TaskName ${q(task)} -Action $action -Principal $principal -Settings $settings -Force | Out-Null`,
    `Start-ScheduledTask -TaskName ${q(task)}`,
    `$state = (Get-ScheduledTask -TaskName ${q(task)}).State`,
    `Write-Output ('forgejo-nsc: runner task ${task} is ' + $state)`,
    "",
  ].join("\n");
}

/** The file the chunks are echoed into, under the account's %TEMP%. */
export function payloadFileName(runnerName: string): string {
  windowsRunnerDir(runnerName);
  return `forgejo-nsc-${runnerName}.b64`;
}

/**
 * `cmd` commands that write base64 of `script` (UTF-8) into %TEMP%\<file>, 7000 characters at a
 * time: the whole launcher does not fit cmd's 8191-character command line. Base64 has no
 * characters cmd treats specially; the space before `>>` is ignored when decoding.
 */
export function chunkCommands(script: string, file: string, chunkSize = 7000): string[] {
  const b64 = Buffer.from(script, "utf8").toString("base64");
  const out: string[] = [];
  for (let i = 0; i < b64.length; i += chunkSize) {
    out.push(`echo ${b64.slice(i, i + chunkSize)} ${i === 0 ? ">" : ">>"} "%TEMP%\\${file}"`);
  }
  return out;
}

/** The -EncodedCommand script that decodes the chunk file and runs it; exit 0 on success, 1 with the error on stderr. */
export function buildPs1Prelude(file: string): string {
  return [
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    "try {",
    `  $f = Join-Path $env:TEMP ${psQuote(file)}`,
    "  $b64 = ([IO.File]::ReadAllText($f)) -replace '\\s', ''",
    "  Remove-Item -LiteralPath $f -Force",
    "  $text = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($b64))",
    "  & ([ScriptBlock]::Create($text))",
    "  exit 0",
    "} catch {",
    "  [Console]::Error.WriteLine('forgejo-nsc: ' + $_.Exception.Message)",
    "  exit 1",
    "}",
  ].join("\n");
}
