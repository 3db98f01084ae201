/** Environment variable names every bootstrap (and `nsc run -e`) can carry. */
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** An environment variable no runner can be given (a bad name, a value nothing can carry). */
export class EnvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvError";
  }
}

export function assertEnvKey(key: string): void {
  if (!ENV_KEY.test(key)) {
    throw new EnvError(
      `environment variable name ${JSON.stringify(key)} is invalid: use letters, digits and underscores, not starting with a digit`,
    );
  }
}
