import { startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeForgejoOptions } from "../fakes/forgejo/index.js";
import { closedAfterEach } from "./closed-after-each.js";
import type { Closable } from "./closed-after-each.js";

/** The organization and repository most Forgejo tests act on: acme (owned by admin) and acme/app. */
export const ACME: FakeForgejoOptions = { orgs: [{ name: "acme", owners: ["admin"] }], repos: [{ owner: "acme", name: "app" }] };

export interface FakeForgejoPerTest {
  /** Starts a fake Forgejo from the file's base options with `opts` over them; closed after the test. */
  start(opts?: FakeForgejoOptions): Promise<FakeForgejo>;
  /** Closes `thing` after the test too, after what was handed over before it (the fake, usually). */
  own<T extends Closable>(thing: T): T;
}

/** The fake Forgejo `start()` of a test file: call once at the top level of the file. */
export function fakeForgejoPerTest(base: FakeForgejoOptions = ACME): FakeForgejoPerTest {
  const own = closedAfterEach();
  return {
    start: async (opts = {}) => own(await startFakeForgejo({ ...base, ...opts })),
    own,
  };
}
