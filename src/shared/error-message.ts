/**
 * The text of a thrown value. Errors from our own clients carry a message written for operators and
 * free of secrets (they scrub tokens before throwing); anything else is stringified.
 */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
