import { defineConfig } from "vitest/config";

/**
 * The real-upstream suites (test/upstream): real Gitea servers built from their Go modules by
 * scripts/upstream/build.ts, both daemons, and the executing nsc stand-in. `npm run test:upstream`
 * builds (or reuses) the programs first. One file at a time: each starts a real server.
 */
export default defineConfig({
  test: {
    include: ["test/upstream/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 1,
    globalSetup: ["./test/global-setup.ts"],
  },
});
