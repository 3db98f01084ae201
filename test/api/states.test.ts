import { describe, expect, it } from "vitest";
import {
  COUNTS_TOWARD_DEMAND_STATES,
  INSTANCE_HOLDING_STATES,
  RUNNER_STATES,
  RUNNER_TRANSITIONS,
  TERMINAL_STATES,
  isLegalTransition,
} from "../../src/api/states.js";
import type { RunnerState } from "../../src/api/states.js";

/** Every (from, to) pair and whether the state machine allows it. */
const LEGAL: Record<RunnerState, Record<RunnerState, boolean>> = {
  //         pending launching running finishing done   failed
  pending: { pending: false, launching: true, running: false, finishing: true, done: false, failed: true },
  launching: { pending: true, launching: false, running: true, finishing: true, done: true, failed: true },
  running: { pending: false, launching: false, running: false, finishing: true, done: false, failed: false },
  finishing: { pending: false, launching: false, running: false, finishing: false, done: true, failed: true },
  done: { pending: false, launching: false, running: false, finishing: false, done: false, failed: false },
  failed: { pending: false, launching: false, running: false, finishing: false, done: false, failed: false },
};

describe("RUNNER_TRANSITIONS", () => {
  const pairs = RUNNER_STATES.flatMap((from) => RUNNER_STATES.map((to) => ({ from, to, legal: LEGAL[from][to] })));

  it.each(pairs)("$from → $to: legal $legal", ({ from, to, legal }) => {
    expect(isLegalTransition(from, to)).toBe(legal);
    expect(RUNNER_TRANSITIONS[from].includes(to)).toBe(legal);
  });

  it("has an entry for every state and names only states", () => {
    expect(Object.keys(RUNNER_TRANSITIONS).sort()).toEqual([...RUNNER_STATES].sort());
    for (const next of Object.values(RUNNER_TRANSITIONS)) for (const s of next) expect(RUNNER_STATES).toContain(s);
  });

  it("ends every path in a terminal state: only terminal states have no way out, and none leads back to itself", () => {
    for (const s of RUNNER_STATES) {
      expect(RUNNER_TRANSITIONS[s].length === 0).toBe(TERMINAL_STATES.includes(s));
      expect(RUNNER_TRANSITIONS[s]).not.toContain(s);
    }
  });

  it("reaches finishing only from states that may hold an instance or never had one, and leaves it only to an outcome", () => {
    const into = RUNNER_STATES.filter((s) => isLegalTransition(s, "finishing"));
    expect(into).toEqual(["pending", "launching", "running"]);
    expect(RUNNER_TRANSITIONS.finishing).toEqual(["done", "failed"]);
  });
});

describe("named state sets", () => {
  it.each([
    ["pending", false, true, false],
    ["launching", true, true, false],
    ["running", true, true, false],
    ["finishing", true, false, false],
    ["done", false, false, true],
    ["failed", false, false, true],
  ] as const)("%s: holds an instance %s, counts toward demand %s, terminal %s", (state, holding, demand, terminal) => {
    expect(INSTANCE_HOLDING_STATES.includes(state)).toBe(holding);
    expect(COUNTS_TOWARD_DEMAND_STATES.includes(state)).toBe(demand);
    expect(TERMINAL_STATES.includes(state)).toBe(terminal);
  });
});
