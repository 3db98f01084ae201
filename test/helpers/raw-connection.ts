import { connect } from "node:net";
import type { Socket } from "node:net";

/** A raw TCP client for the tests of slow, partial and idle connections. */
export interface RawConnection {
  readonly socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** True once the connection is closed (by either side). */
  isClosed(): boolean;
  /** Settles when the connection is closed. */
  readonly closed: Promise<void>;
}

/** Connects to the server of `url` and, once connected, writes `first` (if any) and nothing else. */
export function openRaw(url: string, first = ""): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let data = "";
    let closed = false;
    let onClose!: () => void;
    const closedP = new Promise<void>((r) => (onClose = r));
    const socket = connect({ host: hostname, port: Number(port) });
    const conn: RawConnection = { socket, received: () => data, isClosed: () => closed, closed: closedP };
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => (data += d));
    // A server that refuses (at its connection cap, out of file descriptors) resets or closes.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      closed = true;
      onClose();
      resolve(conn);
    });
    socket.on("connect", () => {
      if (first) socket.write(first);
      resolve(conn);
    });
  });
}

/** Headers of a POST that announces a body (under the body limits) and sends only its start: a slow-body client. */
export function partialBodyRequest(method: string, path: string, headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n${extra}\r\n{"count":`;
}

/** A request whose headers never end: a slowloris client. */
export const PARTIAL_HEADERS = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
