import { ConfigError } from "../../src/config/load.js";

/** The problems the ConfigError `parse` throws lists, or [] when it parses; any other error is thrown. */
export function configProblems(parse: () => unknown): string[] {
  try {
    parse();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}
