import { defineConfig } from "vitest/config";

/**
 * The tests StrykerJS runs for every mutant of the decision core (stryker.config.json): fast,
 * in-process tests only. No test here spawns a process (fake nsc, shells, the daemons), so a
 * mutation run takes minutes on 2 cores. `npm test` still runs every test (vitest.config.ts).
 */
export default defineConfig({
  test: {
    include: [
      // dispatcher: accept, caps, scheduler, supervisor judging (judge.ts), finish, recovery
      "test/dispatcher/accept.test.ts",
      "test/dispatcher/policy.test.ts",
      "test/dispatcher/caps.test.ts",
      "test/dispatcher/scheduler.test.ts",
      "test/dispatcher/supervisor.test.ts",
      "test/dispatcher/judge.test.ts",
      "test/dispatcher/registration-watch.test.ts",
      "test/dispatcher/finish-recovery.test.ts",
      // autoscaler: plan, match, capacity, keys
      "test/autoscaler/plan.test.ts",
      "test/autoscaler/plan-decisions.test.ts",
      "test/autoscaler/plan-warm-trim.test.ts",
      "test/autoscaler/keys-capacity.test.ts",
      "test/autoscaler/match.test.ts",
      // webhook signatures, env-flag splitting, labels
      "test/forgejo/webhook-signature.test.ts",
      "test/namespace/env-flags.test.ts",
      "test/runner/labels.test.ts",
      // shared: seen twice before acting, one pass at a time
      "test/shared/sightings.test.ts",
      "test/shared/single-flight.test.ts",
    ],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
