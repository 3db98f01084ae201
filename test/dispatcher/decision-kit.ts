import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import type { DispatcherContext } from "../../src/dispatcher/context.js";
import { CredentialSource } from "../../src/dispatcher/credentials.js";
import { Records } from "../../src/dispatcher/records.js";
import type { Scheduler } from "../../src/dispatcher/scheduler.js";
import { Supervisor } from "../../src/dispatcher/supervisor.js";
import { ForgejoClient } from "../../src/forgejo/client.js";
import type { Scope } from "../../src/forgejo/scope.js";
import { Metrics } from "../../src/http/metrics.js";
import { LABEL_OWNER, LABEL_PLATFORM, LABEL_RUNNER } from "../../src/namespace/launcher.js";
import type { InstanceInfo } from "../../src/namespace/launcher.js";
import { openStore } from "../../src/store/open-store.js";
import type { Platform, RunnerPatch, RunnerRecord, RunnerState, Store } from "../../src/store/types.js";
import { FAKE_ADMIN_TOKEN, startFakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeForgejo, FakeForgejoOptions, FakeRunner, FakeScope } from "../fakes/forgejo/index.js";
import { ControllableLauncher } from "../fakes/launcher/controllable-launcher.js";
import { captureLogger } from "../helpers/log-capture.js";
import { T0, dispatchWith } from "../store/records.js";

export const KIT_T0 = Date.parse("2026-05-01T08:00:00.000Z");

/**
 * The dispatcher's decision steps (supervise, finish, recover) wired by hand, without HTTP or
 * timers: a SQLite store in memory, the real ForgejoClient against the in-process fake Forgejo,
 * one ControllableLauncher per platform, and a clock the test moves. Launches "in flight" are a
 * set the test fills (the scheduler's only part the supervisor asks about).
 */
export interface DecisionKit {
  ctx: DispatcherContext;
  store: Store;
  forgejo: FakeForgejo;
  launchers: Record<Platform, ControllableLauncher>;
  supervisor: Supervisor;
  inFlight: Set<string>;
  logs: () => string;
  advance(ms: number): void;
  /** A runner record in `state`, with the patch applied (instance id, registration, expiry …). */
  runner(
    name: string,
    state: RunnerState,
    patch?: RunnerPatch & { platform?: Platform; job?: RunnerRecord["job"]; scope?: Scope; createdAtMs?: number },
  ): Promise<RunnerRecord>;
  /** An instance of ours on `platform`'s launcher, named for `runner` (omit for an unlabelled stray). */
  instance(id: string, runner?: string, platform?: Platform, extra?: Partial<InstanceInfo>): void;
  /** An ephemeral registration at the fake Forgejo, as the dispatcher makes one. */
  registration(name: string, scope?: Scope): FakeRunner;
  close(): Promise<void>;
}

export async function startDecisionKit(opts: { forgejo?: FakeForgejoOptions; yaml?: Record<string, unknown> } = {}): Promise<DecisionKit> {
  const forgejo = await startFakeForgejo(opts.forgejo);
  const config = dispatcherConfigSchema.parse({ forgejo: { base_url: forgejo.url, token: FAKE_ADMIN_TOKEN, timeout: "5s" }, ...opts.yaml });
  const store = await openStore(":memory:");
  const { logger, text } = captureLogger("debug");
  let offset = 0;
  const now = () => new Date(KIT_T0 + offset);
  const metrics = new Metrics({ defaultMetrics: false });
  const client = new ForgejoClient({ baseUrl: forgejo.url, token: FAKE_ADMIN_TOKEN, timeoutMs: 5000, logger });
  const launchers = {
    linux: new ControllableLauncher("linux"),
    windows: new ControllableLauncher("windows"),
    macos: new ControllableLauncher("macos"),
  };
  const ctx: DispatcherContext = {
    config,
    records: new Records(store, logger, metrics, now),
    forgejo: client,
    creds: new CredentialSource(client, config, now),
    launchers,
    logger,
    metrics,
    now,
  };
  const inFlight = new Set<string>();
  const scheduler = { isLaunching: (name: string) => inFlight.has(name) } as unknown as Scheduler;
  let seq = 0;
  return {
    ctx,
    store,
    forgejo,
    launchers,
    supervisor: new Supervisor(ctx, scheduler),
    inFlight,
    logs: text,
    advance(ms) {
      offset += ms;
    },
    async runner(name, state, patch = {}) {
      const { platform = "linux", job, scope, createdAtMs = offset, ...rest } = patch;
      const { dispatch, runners } = dispatchWith({
        id: `d-${++seq}`,
        names: [name],
        scope,
        createdAtMs: KIT_T0 + createdAtMs - T0,
        runner: { platform, job },
      });
      await store.createDispatch(dispatch, runners);
      const path: RunnerState[] = {
        pending: [],
        launching: ["launching"],
        running: ["launching", "running"],
        finishing: ["launching", "running", "finishing"],
        done: ["done"],
        failed: ["failed"],
      }[state] as RunnerState[];
      let from: RunnerState = "pending";
      for (const to of path) {
        await store.transition(
          name,
          [from],
          to,
          to === "finishing" && rest.reason ? rest.reason : `test: ${to}`,
          to === state ? rest : {},
          now(),
        );
        from = to;
      }
      return (await store.getRunner(name)) as RunnerRecord;
    },
    instance(id, runner, platform = "linux", extra = {}) {
      const labels: Record<string, string> = { [LABEL_OWNER]: config.dispatcher.id };
      if (runner) labels[LABEL_RUNNER] = runner;
      if (runner) labels[LABEL_PLATFORM] = platform;
      launchers[platform].instances.set(id, { instanceId: id, labels, ...extra });
    },
    registration(name, scope = { level: "instance" }) {
      const fake: FakeScope =
        scope.level === "repository" ? { level: "repository", owner: scope.owner ?? "", name: scope.name ?? "" } : { level: "instance" };
      return forgejo.world.registerRunner(fake, { name, ephemeral: true, via: "rest" });
    },
    async close() {
      await store.close();
      await forgejo.close();
    },
  };
}
