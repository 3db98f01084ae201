import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/tmp.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/** Issue 10, item 13: /readyz is not "ready" while the Namespace token file is gone. */
describe("/readyz and namespace.token_file", () => {
  const tmp = tempDir("fnsc-ready-");
  const tokenFile = join(tmp.dir, "nsc-token.json");
  let h: Harness;
  beforeAll(async () => {
    writeFileSync(tokenFile, '{"bearer_token": "nsc-bearer-readyz-0123456789"}');
    h = await startHarness({ simulate: false, yaml: `namespace:\n  token_file: ${tokenFile}\n` });
  });
  afterAll(async () => {
    await h?.close();
    tmp.cleanup();
  });

  it("says ready while the file is there, and names the file and how to create it once it is gone", async () => {
    const before = await fetch(`${h.url}/readyz`);
    expect(before.status, await before.clone().text()).toBe(200);
    rmSync(tokenFile);
    const after = await fetch(`${h.url}/readyz`);
    expect(after.status).toBe(503);
    const body = (await after.json()) as { problems: Record<string, string> };
    expect(body.problems.namespace_token).toContain(`namespace.token_file: cannot read ${tokenFile} (ENOENT)`);
    expect(body.problems.namespace_token).toContain("nsc login");
    expect(JSON.stringify(body)).not.toContain("nsc-bearer-readyz");
  });
});
