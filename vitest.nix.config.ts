import { defineConfig } from "vitest/config";

/**
 * The Nix checks (test/nix): every Nix file parses, nix/tests/static.nix evaluates the NixOS module
 * and the flake against stubs, and the store URLs the module writes open a real PostgreSQL with the
 * daemon's own code. `npm run test:nix` installs Nix first where it can (scripts/ensure-nix.sh).
 */
export default defineConfig({
  test: {
    include: ["test/nix/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 1,
  },
});
