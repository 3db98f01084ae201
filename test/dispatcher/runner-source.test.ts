import { describe, expect, it } from "vitest";
import { runnerSourceFor } from "../../src/runner/runner-source.js";
import { closedAfterEach } from "../helpers/closed-after-each.js";
import { startHarness } from "./harness.js";
import type { Harness } from "./harness.js";

/**
 * Upstream publishes forgejo-runner for linux/amd64 and linux/arm64 only (runner
 * .forgejo/workflows/build-release.yml), so a Windows runner needs an operator-hosted binary and a
 * macOS runner one of that or a build from source. Without one, the request is refused at once
 * instead of paying for an instance whose bootstrap can only fail.
 */
let h: Harness | undefined;
const own = closedAfterEach();

const BIN = { url: "https://forgejo.example/api/packages/ops/generic/forgejo-runner/12.13.2/forgejo-runner.exe", sha256: "AB".repeat(32) };

describe("runner sources for macOS and Windows", () => {
  it("refuses a Windows dispatch with 400 naming runner.binaries.windows_amd64 when none is configured", async () => {
    h = own(await startHarness({ simulate: false }));
    const r = await h.request("POST", "/api/v1/dispatch", { labels: ["namespace-profile-windows-large"] });
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(
      /run on windows, which this dispatcher cannot serve: no forgejo-runner for Windows: upstream publishes forgejo-runner for Linux only; build it and set runner\.binaries\.windows_amd64 \(url and sha256\)/,
    );
    expect(await h.store.listRunners({})).toEqual([]);
    expect(h.nsc.calls("create")).toEqual([]);
  });

  it("refuses macOS only when building from source is switched off and no binary is configured", async () => {
    h = own(await startHarness({ simulate: false, yaml: "runner:\n  macos_build_from_source: false\n" }));
    const r = await h.request("POST", "/api/v1/dispatch", { labels: ["namespace-profile-macos-6x14"] });
    expect(r.status).toBe(400);
    expect(r.body.message).toContain("no forgejo-runner for macOS");
    expect(r.body.message).toContain("runner.binaries.macos_arm64");
  });

  it("accepts Windows once a binary is configured", async () => {
    h = own(
      await startHarness({
        simulate: false,
        yaml: `runner:\n  binaries:\n    windows_amd64:\n      url: ${BIN.url}\n      sha256: "${BIN.sha256}"\ndispatcher:\n  shutdown_timeout: 1s\n`,
      }),
    );
    const r = await h.request("POST", "/api/v1/dispatch", { labels: ["namespace-profile-windows-large"] });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
  });

  it("picks the configured binary first, else a build of runner.version on macOS", () => {
    const base = { version: "12.13.2", binaries: {}, macos_build_from_source: true };
    expect(runnerSourceFor("macos", base)).toEqual({
      kind: "source",
      version: "12.13.2",
      archiveUrl: "https://code.forgejo.org/forgejo/runner/archive/v12.13.2.tar.gz",
      module: "code.forgejo.org/forgejo/runner/v12",
    });
    expect(runnerSourceFor("macos", { ...base, binaries: { macos_arm64: BIN } })).toEqual({
      kind: "download",
      url: BIN.url,
      sha256: BIN.sha256.toLowerCase(),
    });
    expect(runnerSourceFor("macos", { ...base, version: "13" })).toMatchObject({
      kind: "none",
      problem: expect.stringContaining("is not a release such as 12.13.2"),
    });
    expect(runnerSourceFor("windows", base)).toMatchObject({ kind: "none" });
  });
});
