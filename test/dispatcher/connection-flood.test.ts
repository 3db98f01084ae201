import { afterAll, describe, expect, it } from "vitest";
import type { Exit } from "../helpers/process-exit.js";
import { PARTIAL_HEADERS, openRaw, partialBodyRequest } from "../helpers/raw-connection.js";
import type { RawConnection } from "../helpers/raw-connection.js";
import { waitFor } from "../helpers/wait.js";
import { DEADLINE_MS, ProcessWorld } from "./process-harness.js";

/**
 * Issue 10, item 2: ~1,100 sockets holding a partial body under a 1,024 file limit made the next
 * `nsc` spawn fail with EMFILE, unhandled, and the dispatcher exited 1. Here the dispatcher runs
 * as a process under `ulimit -n 256` and gets 450 idle, slowloris and slow-body connections.
 */
const FILE_LIMIT = 256;
const PER_KIND = 150;

let world: ProcessWorld | undefined;
afterAll(async () => {
  await world?.close();
});

describe("a flood of unauthenticated connections beyond the file limit", () => {
  it("leaves the dispatcher alive, serving /healthz and supervising again", { timeout: 4 * DEADLINE_MS }, async () => {
    // max_connections above the file limit on purpose: the descriptors run out, so the
    // supervisor's nsc spawns meet EMFILE; the timeouts are what gives them back.
    world = await ProcessWorld.create({
      config: { http: { headers_timeout: "3s", request_timeout: "4s", connection_timeout: "4s", max_connections: 5000 } },
    });
    const proc = await world.start({ fileLimit: FILE_LIMIT });
    let exit: Exit | undefined;
    void proc.exited.then((e) => (exit = e));

    const flood: RawConnection[] = [];
    for (let i = 0; i < PER_KIND; i++) {
      flood.push(
        ...(await Promise.all([
          openRaw(proc.url),
          openRaw(proc.url, PARTIAL_HEADERS),
          openRaw(proc.url, partialBodyRequest("POST", "/api/v1/dispatch")),
        ])),
      );
    }
    expect(flood).toHaveLength(3 * PER_KIND);

    // The descriptors ran out while the flood was held: a supervision look could not start nsc.
    const alive = () => {
      if (exit) throw new Error(`the dispatcher exited (${JSON.stringify(exit)}): ${proc.stderr().slice(-1500)}`);
      return true;
    };
    await waitFor(() => alive() && /could not list instances[^\n]*EMFILE|EMFILE[^\n]*could not list instances/.test(proc.stdout()), {
      timeoutMs: DEADLINE_MS,
      what: "a supervision look to fail with EMFILE while the descriptors are used up",
    });
    expect(exit, `the dispatcher exited: ${proc.stderr().slice(-2000)}`).toBeUndefined();

    // The flood is still held open by the client; the dispatcher frees itself from it.
    await waitFor(async () => alive() && (await fetch(`${proc.url}/healthz`)).status === 200, {
      timeoutMs: DEADLINE_MS,
      intervalMs: 200,
      what: "/healthz to answer 200 again",
    });
    await world.waitForLooks(1);
    await waitFor(() => flood.every((c) => c.isClosed()), { timeoutMs: DEADLINE_MS, what: "the server to close every flood connection" });
    expect(exit).toBeUndefined();
    expect(proc.stderr()).not.toMatch(/Unhandled|uncaught/i);
    // The slow-body clients were refused without a token, not left to time out.
    expect(flood.filter((c) => c.received().startsWith("HTTP/1.1 401 ")).length).toBeGreaterThan(0);
  });
});
