import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The real-upstream suites build and start real servers: npm run test:upstream.
    exclude: ["test/upstream/**", "test/nix/**", "**/node_modules/**"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Tests spawn real processes (fake nsc, the daemons); 2 cores here.
    maxWorkers: 2,
    // Collects every log line of the run and fails it if a test secret appears (test/global-setup.ts).
    globalSetup: ["./test/global-setup.ts"],
  },
});
