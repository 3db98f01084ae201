import { afterEach } from "vitest";

export interface Closable {
  close(): unknown;
}

/**
 * A per-test owner: registers one afterEach in the calling test file that closes, in the order they
 * were handed over, everything the test gave the returned `own` (which hands it back unchanged).
 */
export function closedAfterEach(): <T extends Closable>(thing: T) => T {
  const open: Closable[] = [];
  afterEach(async () => {
    for (const thing of open.splice(0)) await thing.close();
  });
  return (thing) => {
    open.push(thing);
    return thing;
  };
}
