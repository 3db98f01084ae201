import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STATUS_TOKEN, startStack } from "../autoscaler/harness.js";
import { API_TOKEN, startHarness } from "../dispatcher/harness.js";
import { PARTIAL_HEADERS, openRaw, partialBodyRequest } from "../helpers/raw-connection.js";
import type { RawConnection } from "../helpers/raw-connection.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Issue 10, item 2 (in process, both daemons): slow, partial and idle connections are closed by
 * the server itself, unauthenticated requests are refused before their body is read, and beyond
 * http.max_connections new connections are closed at once.
 */
const HTTP = { headers_timeout: "1s", request_timeout: "2s", connection_timeout: "2s", max_connections: 4 };

interface Daemon {
  url: string;
  /** An API route that needs the bearer token ("METHOD /path"). */
  protectedRoute: [string, string];
  token: string;
  connections(): Promise<number>;
  close(): Promise<void>;
}

const daemons: Record<string, () => Promise<Daemon>> = {
  dispatcher: async () => {
    const h = await startHarness({
      simulate: false,
      yaml: `http:\n${Object.entries(HTTP)
        .map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`)
        .join("\n")}\n`,
    });
    return {
      url: h.url,
      protectedRoute: ["POST", "/api/v1/dispatch"],
      token: API_TOKEN,
      connections: () => count(h.dispatcher.app.server),
      close: () => h.close(),
    };
  },
  autoscaler: async () => {
    const s = await startStack({ start: false, top: { http: HTTP } });
    return {
      url: s.url,
      protectedRoute: ["GET", "/api/v1/status"],
      token: STATUS_TOKEN,
      connections: () => count(s.autoscaler.app.server),
      close: () => s.close(),
    };
  },
};

function count(server: { getConnections(cb: (err: Error | null, n: number) => void): void }): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

const closedByServer = (c: RawConnection, what: string) => waitFor(() => c.isClosed(), { timeoutMs: 10_000, what });

describe.each(Object.keys(daemons))("%s connection limits", (name) => {
  let d: Daemon;
  beforeAll(async () => {
    d = await (daemons[name] as () => Promise<Daemon>)();
  });
  afterAll(async () => {
    await d?.close();
  });

  it("refuses a request without a token before reading its body, and closes the connection", async () => {
    const c = await openRaw(d.url, partialBodyRequest(...d.protectedRoute));
    await closedByServer(c, "the unauthenticated slow-body connection to be answered and closed");
    expect(c.received()).toMatch(/^HTTP\/1\.1 401 /);
    expect(c.received()).toMatch(/connection: close/i);
    expect(c.received()).toContain("missing bearer token");
  });

  it("answers a request for no route before reading its body, and closes the connection", async () => {
    const c = await openRaw(d.url, partialBodyRequest("POST", "/no/such/route"));
    await closedByServer(c, "the unrouted slow-body connection to be answered and closed");
    expect(c.received()).toMatch(/^HTTP\/1\.1 404 /);
    expect(c.received()).toContain("no route for POST /no/such/route");
  });

  it("closes a connection whose headers never end (http.headers_timeout)", async () => {
    const c = await openRaw(d.url, PARTIAL_HEADERS);
    await closedByServer(c, "the slowloris connection to be closed");
  });

  it("closes a connection that never sends anything", async () => {
    const c = await openRaw(d.url);
    await closedByServer(c, "the idle connection to be closed");
    // Node counts the wait for a first request against the headers timeout (408).
    expect(c.received()).toMatch(/^$|^HTTP\/1\.1 408 /);
  });

  it("closes an authenticated request whose body never completes (http.request_timeout)", async () => {
    const c = await openRaw(d.url, partialBodyRequest(...d.protectedRoute, { authorization: `Bearer ${d.token}` }));
    await closedByServer(c, "the slow-body connection to be closed");
  });

  it("closes connections beyond http.max_connections at once", async () => {
    await waitFor(async () => (await d.connections()) === 0, { what: "no connection left from earlier tests" });
    const held = await Promise.all([1, 2, 3, 4].map(() => openRaw(d.url)));
    await waitFor(async () => (await d.connections()) === 4, { what: "the server to hold 4 connections" });
    const extra = await openRaw(d.url, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await closedByServer(extra, "the fifth connection to be closed");
    expect(extra.received()).toBe("");
    // It was refused for the cap, not by a timeout: the four it holds are still open.
    expect(held.filter((c) => c.isClosed())).toEqual([]);
    for (const c of held) c.socket.destroy();
  });
});

describe("a dispatch that waits longer than http.connection_timeout", () => {
  it("gets its answer: the wait extends the connection's idle limit", async () => {
    const h = await startHarness({
      simulate: false,
      yaml: `http:\n  headers_timeout: 1s\n  request_timeout: 2s\n  connection_timeout: 2s\n`,
    });
    try {
      const r = await h.request("POST", "/api/v1/dispatch?wait=finished&timeout=3s", { labels: ["namespace-profile-linux-small"] });
      expect(r.status).toBe(202);
      expect(r.body.wait).toEqual({ for: "finished", complete: false });
    } finally {
      await h.close();
    }
  });
});
