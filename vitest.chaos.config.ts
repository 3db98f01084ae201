import { defineConfig } from "vitest/config";

/**
 * The replica chaos test (test/chaos): real dispatcher and autoscaler processes on a PostgreSQL server
 * of the test's own behind the real Caddy, killed, paused, and the PostgreSQL restarted under them.
 * `npm run test:chaos`; .ci/run runs it after `npm test`.
 */
export default defineConfig({
  test: {
    include: ["test/chaos/**/*.chaos.ts"],
    testTimeout: 1_200_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 1,
    globalSetup: ["./test/global-setup.ts"],
  },
});
