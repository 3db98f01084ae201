/**
 * Errors a client of our HTTP APIs can see. The single error handler maps them to status codes;
 * every message says what was wrong and what to do.
 */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const badRequest = (message: string, details?: unknown) => new HttpError(400, "invalid_request", message, details);
export const forbidden = (message: string, details?: unknown) => new HttpError(403, "forbidden", message, details);
export const notFound = (message: string) => new HttpError(404, "not_found", message);
export const conflict = (message: string, details?: unknown) => new HttpError(409, "conflict", message, details);
export const tooMany = (message: string, retryAfterSeconds: number) =>
  new HttpError(429, "queue_full", message, undefined, { "retry-after": String(retryAfterSeconds) });
