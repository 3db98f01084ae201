import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import Fastify from "fastify";
import { describe, expect, it } from "vitest";

/**
 * Issue 10, item 17: package.json says Node >= 20.19, so nothing `npm ci` installs may require a
 * newer Node (npm prints EBADENGINE for each; cookie@2 through fastify's light-my-request did).
 */
const ROOT = join(import.meta.dirname, "../..");
const semver = createRequire(import.meta.url)("semver") as {
  minVersion(range: string): { version: string } | null;
  satisfies(v: string, range: string): boolean;
};

interface LockEntry {
  version?: string;
  engines?: { node?: string } | string[];
  optional?: boolean;
  os?: string[];
  cpu?: string[];
}

describe("Node engines", () => {
  it("every package the lockfile installs here supports the oldest Node the project claims", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines: { node: string } };
    const oldest = semver.minVersion(pkg.engines.node)?.version as string;
    expect(oldest).toBe("20.19.0");
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
    const installedHere = (e: LockEntry) =>
      !e.optional || ((!e.os || e.os.includes(process.platform)) && (!e.cpu || e.cpu.includes(process.arch)));
    const refusing = Object.entries(lock.packages)
      .filter(([path, e]) => path !== "" && installedHere(e) && !Array.isArray(e.engines) && e.engines?.node)
      .filter(([, e]) => !semver.satisfies(oldest, (e.engines as { node: string }).node))
      .map(([path, e]) => `${path.replace(/^.*node_modules\//, "")}@${e.version} wants node ${(e.engines as { node: string }).node}`);
    expect(refusing).toEqual([]);
  });
});

describe("the cookie override", () => {
  it("light-my-request (fastify.inject) still builds Cookie headers with it", async () => {
    const app = Fastify();
    app.get("/", async (req) => ({ cookie: req.headers.cookie }));
    const res = await app.inject({ method: "GET", url: "/", cookies: { a: "1", b: "x y" } });
    expect(res.json()).toEqual({ cookie: "a=1; b=x%20y" });
    await app.close();
  });
});
