import { createServer } from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface StubRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
}

export type StubHandler = (req: StubRequest) => { status: number; body: unknown } | undefined;

/**
 * A real HTTP server on 127.0.0.1 answering like one of our daemons: bearer check (401 with our
 * error body), our 404 body for unknown routes, and every request recorded.
 */
export async function startStubDaemon(opts: { token?: string; handle: StubHandler }) {
  const requests: StubRequest[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://stub");
    const r: StubRequest = { method: req.method ?? "GET", path: url.pathname, query: url.searchParams, headers: req.headers };
    requests.push(r);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (opts.token !== undefined) {
      const auth = req.headers.authorization;
      if (!auth)
        return send(401, {
          error: "unauthorized",
          message: "missing bearer token: send Authorization: Bearer <token> (see auth.tokens in the config)",
        });
      if (auth !== `Bearer ${opts.token}`) return send(401, { error: "unauthorized", message: "bearer token not accepted" });
    }
    const answer = opts.handle(r);
    if (!answer) return send(404, { error: "not_found", message: `no route for ${r.method} ${r.path}` });
    send(answer.status, answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A URL where nothing listens: a server is started to reserve a port, then closed. */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
