import { chmod, link, lstat, mkdir, mkdtemp, rename, rm, rmdir, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CliError } from "../errors.js";

/** Prepares --out: created with mode 0700 when missing; an existing one is tightened to 0700. */
export async function prepareOutDir(dir: string): Promise<{ created: boolean; tightenedFrom?: number }> {
  let st;
  try {
    st = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw new CliError(`cannot inspect ${dir} (${(err as NodeJS.ErrnoException).code}); check --out`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await chmod(dir, 0o700);
    } catch (e) {
      throw new CliError(`cannot create ${dir} (${(e as NodeJS.ErrnoException).code ?? "error"}); pick a writable --out directory`);
    }
    return { created: true };
  }
  if (!st.isDirectory()) throw new CliError(`${dir} exists and is not a directory; pass --out <new or existing directory>`);
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    try {
      await chmod(dir, 0o700);
    } catch (e) {
      throw new CliError(
        `${dir} is readable by other users (mode ${mode.toString(8)}) and cannot be changed to 0700 (${(e as NodeJS.ErrnoException).code}); use a directory you own`,
      );
    }
    return { created: false, tightenedFrom: mode };
  }
  return { created: false };
}

/** Names among `names` that already exist in `dir`. */
export async function existingFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const n of names) {
    try {
      await lstat(join(dir, n));
      found.push(n);
    } catch {
      // absent: fine
    }
  }
  return found;
}

/** A private directory inside --out where everything is written and validated before it is moved into place. */
export async function makeStaging(dir: string): Promise<string> {
  return mkdtemp(join(dir, ".provision-"));
}

export async function writePrivateFile(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600, flag: "wx" });
  // The umask can only remove bits, but a pre-set ACL or odd filesystem could differ: say it exactly.
  await chmod(path, 0o600);
}

/**
 * Moves staged files into --out. Without force, link() fails on an existing file, so a file that
 * appeared since the check is still never overwritten.
 */
export async function commitFiles(staging: string, dir: string, names: readonly string[], force: boolean): Promise<void> {
  for (const n of names) {
    const from = join(staging, n);
    const to = join(dir, n);
    if (force) {
      await rename(from, to);
      continue;
    }
    try {
      await link(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new CliError(`${to} appeared while provisioning; nothing after it was written. Rerun with --force to replace it`);
      }
      throw err;
    }
    await unlink(from);
  }
}

export async function removeStaging(staging: string): Promise<void> {
  await rm(staging, { recursive: true, force: true });
}

/** Removes `dir` when it is empty (a directory a failed run created); anything in it is kept. */
export async function removeIfEmpty(dir: string): Promise<void> {
  await rmdir(dir).catch(() => undefined);
}

/** Deletes those of `names` that exist in `dir`; returns the ones it deleted. */
export async function removeFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const n of names) {
    try {
      await unlink(join(dir, n));
      removed.push(n);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT")
        throw new CliError(`cannot remove ${join(dir, n)}, which the new configs no longer use (${code}); delete it by hand`);
    }
  }
  return removed;
}
