import { join } from "node:path";
import { createAutoscaler } from "../../src/autoscaler/app.js";
import { buildAutoscalerDeps } from "../../src/autoscaler/wiring.js";
import type { Autoscaler } from "../../src/autoscaler/app.js";
import { autoscalerConfigSchema } from "../../src/config/autoscaler-schema.js";
import { dispatcherConfigSchema } from "../../src/config/dispatcher-schema.js";
import { parseConfig } from "../../src/config/load.js";
import { createDispatcher } from "../../src/dispatcher/app.js";
import type { Dispatcher } from "../../src/dispatcher/app.js";
import { buildDispatcherDeps } from "../../src/dispatcher/wiring.js";
import { Metrics } from "../../src/http/metrics.js";
import type { Store } from "../../src/store/types.js";
import { freePort } from "../helpers/free-port.js";
import { createFakeNsc } from "../fakes/nsc/index.js";
import type { FakeNsc } from "../fakes/nsc/index.js";
import { captureLogger } from "../helpers/log-capture.js";
import { recordSecrets } from "../helpers/secrets.js";

export const UPSTREAM_API_TOKEN = "upstream-e2e-dispatcher-token-4d1e9a";
export const UPSTREAM_WEBHOOK_SECRET = "upstream-e2e-webhook-secret-83b0c2";
export const LABEL = "namespace-profile-linux-small";

export interface Daemons {
  nsc: FakeNsc;
  dispatcher: Dispatcher;
  store: Store;
  autoscaler: Autoscaler;
  autoscalerUrl: string;
  logs: () => string;
  stop(): Promise<void>;
}

/**
 * Both daemons for real, in this process, against a real forge; Namespace is the executing nsc
 * stand-in, so each runner's bootstrap script really runs on this machine.
 */
export async function startDaemons(opts: {
  dir: string;
  forge: { url: string; token: string };
  scope: { level: "repository"; owner: string; name: string };
  /** Put first on PATH inside each "instance" (where a real forgejo-runner would be). */
  runnerPath?: string;
  webhooks: boolean;
}): Promise<Daemons> {
  recordSecrets([UPSTREAM_API_TOKEN, UPSTREAM_WEBHOOK_SECRET]);
  const nsc = createFakeNsc(join(opts.dir, "nsc"), { execute: { pathPrefix: opts.runnerPath ?? join(opts.dir, "no-runner") } });
  Object.assign(process.env, nsc.env);
  const dispatcherLogs = captureLogger("debug");
  const dispatcherConfig = parseConfig(
    dispatcherConfigSchema,
    `
listen: 127.0.0.1:0
forgejo:
  base_url: ${opts.forge.url}
  token: ${opts.forge.token}
namespace:
  nsc_binary: ${nsc.bin}
  workdir: ${join(opts.dir, "runner-work")}
  wait_timeout: 30s
dispatcher:
  state_path: ${join(opts.dir, "state.db")}
  supervise_interval: 500ms
auth:
  tokens: [${UPSTREAM_API_TOKEN}]
`,
    "upstream-dispatcher.yaml",
    {},
  );
  const deps = await buildDispatcherDeps(dispatcherConfig, dispatcherLogs.logger);
  const dispatcher = await createDispatcher({ ...deps, timers: true });
  await dispatcher.start();
  const dispatcherUrl = await dispatcher.app.listen({ host: "127.0.0.1", port: 0 });

  const port = await freePort();
  const autoscalerUrl = `http://127.0.0.1:${port}`;
  const autoscalerLogs = captureLogger("debug");
  const config = autoscalerConfigSchema.parse({
    listen: `127.0.0.1:${port}`,
    dispatcher: { url: dispatcherUrl, token: UPSTREAM_API_TOKEN },
    instances: [
      {
        name: "forge",
        forgejo: { base_url: opts.forge.url, token: opts.forge.token },
        scope: opts.scope,
        poll_interval: "2s",
        ...(opts.webhooks
          ? {
              disable_polling: true,
              resync_interval: "0",
              webhook_secret: UPSTREAM_WEBHOOK_SECRET,
              webhook: { url: `${autoscalerUrl}/webhook/forge` },
            }
          : {}),
        targets: [{ labels: [LABEL], ttl: "15m" }],
      },
    ],
  });
  const autoscaler = await createAutoscaler(
    buildAutoscalerDeps(config, autoscalerLogs.logger, { metrics: new Metrics({ daemon: "autoscaler", defaultMetrics: false }) }),
  );
  await autoscaler.app.listen({ host: "127.0.0.1", port });
  autoscaler.start();
  return {
    nsc,
    dispatcher,
    store: deps.store,
    autoscaler,
    autoscalerUrl,
    logs: () => `${dispatcherLogs.text()}\n${autoscalerLogs.text()}`,
    async stop() {
      await autoscaler.stop();
      await dispatcher.stop();
      nsc.destroyAll();
      await deps.store.close();
    },
  };
}
