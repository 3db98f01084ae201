import { describe, expect, it } from "vitest";
import { autoscalerConfigSchema, warmRetireBeforeMs } from "../../src/config/autoscaler-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { MINIMAL_AUTOSCALER_YAML } from "../helpers/autoscaler-yaml.js";
import { configProblems } from "../helpers/config-problems.js";

/** warm_idle_timeout, warm_retire_before and min_idle_auto (issue 13 item 3): defaults and checks. */
const yaml = (target: string) => `${MINIMAL_AUTOSCALER_YAML}${target}`;
const target = (extra: string) => parseConfig(autoscalerConfigSchema, yaml(extra), "t.yaml", {}).instances[0]!.targets[0]!;
const MIN = 60_000;
const problems = (extra: string): string[] => configProblems(() => target(extra));

describe("warm-pool trimming settings", () => {
  it.each([
    { what: "no ttl", extra: "", idle: 5 * MIN, retire: 10 * MIN },
    { what: "ttl 30m", extra: "        ttl: 30m\n", idle: 5 * MIN, retire: 10 * MIN },
    { what: "ttl 15m: a third of it", extra: "        ttl: 15m\n", idle: 5 * MIN, retire: 5 * MIN },
    {
      what: "both set",
      extra: "        ttl: 2h\n        warm_idle_timeout: 90s\n        warm_retire_before: 25m\n",
      idle: 90_000,
      retire: 25 * MIN,
    },
  ])("$what → idle timeout and retire-before", ({ extra, idle, retire }) => {
    const t = target(extra);
    expect(t.warm_idle_timeout).toBe(idle);
    expect(warmRetireBeforeMs(t)).toBe(retire);
  });

  it("warm_retire_before as long as the ttl is refused with what to do", () => {
    expect(problems("        ttl: 20m\n        warm_retire_before: 20m\n")).toEqual([
      "instances[0].targets[0].warm_retire_before: must be shorter than ttl (20m0s): every warm runner would be retired as soon as it is up; lower it or raise ttl",
    ]);
  });
});

describe("min_idle_auto", () => {
  it("defaults window 30m and boot_time 30s", () => {
    expect(target("        min_idle_auto: { max: 2 }\n").min_idle_auto).toEqual({ max: 2, window: 30 * MIN, boot_time: 30_000 });
  });

  it("max above max_runners is refused: the pool could never fill", () => {
    expect(problems("        max_runners: 2\n        min_idle_auto: { max: 3 }\n")).toEqual([
      "instances[0].targets[0].max_runners: is 2, below the largest min_idle (3); the warm pool could never fill",
    ]);
  });
});
