import { afterEach, beforeEach } from "vitest";

/**
 * A fixture made fresh before each test (by `make`) and disposed of after it. Call once in a test
 * file or describe block; the returned object reads the current test's value, so its fields are
 * used inside tests only (outside one it throws).
 */
export function perTest<T extends object>(make: () => T, dispose: (value: T) => void): T {
  let current: T | undefined;
  beforeEach(() => {
    current = make();
  });
  afterEach(() => {
    if (current) dispose(current);
    current = undefined;
  });
  return new Proxy({} as T, {
    get(_, key) {
      if (!current) throw new Error(`a per-test fixture read outside a test (${String(key)})`);
      return Reflect.get(current, key) as unknown;
    },
  });
}
