/** The JSON value `text` holds, or `fallback` where it is not JSON. */
export function jsonOr<T>(text: string, fallback: T): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return fallback;
  }
}

export interface JsonReply {
  status: number;
  /** The answer's JSON, or its text where it is not JSON. Test code reads arbitrary JSON bodies. */
  body: any;
  headers: Headers;
}

/**
 * One HTTP request whose answer is read as JSON where it is JSON. A string body is sent as it is,
 * any other body as JSON; with a body, content-type is application/json unless `headers` says else.
 */
export async function fetchJson(
  url: string,
  init: { method: string; body?: unknown; headers?: Record<string, string> },
): Promise<JsonReply> {
  const { method, body, headers = {} } = init;
  const res = await fetch(url, {
    method,
    headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: jsonOr(text, text), headers: res.headers };
}
