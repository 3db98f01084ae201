#!/usr/bin/env node
import { splitListen } from "../config/common.js";
import { dispatcherConfigSchema } from "../config/dispatcher-schema.js";
import { assertSafeListen, createDispatcher } from "../dispatcher/app.js";
import { buildDispatcherDeps } from "../dispatcher/wiring.js";
import { createLogger } from "../http/logger.js";
import { daemonMain, runDaemon } from "./daemon-main.js";

runDaemon("forgejo-nsc-dispatcher", () =>
  daemonMain({
    name: "forgejo-nsc-dispatcher",
    schema: dispatcherConfigSchema,
    configEnv: "FORGEJO_NSC_CONFIG",
    validate: (config) => assertSafeListen(config.listen, config.auth.tokens, config.auth.allow_unauthenticated),
    async run(config) {
      const logger = createLogger(config.log.level, "forgejo-nsc-dispatcher");
      const deps = await buildDispatcherDeps(config, logger);
      const dispatcher = await createDispatcher(deps);
      const { host, port } = splitListen(config.listen);
      await dispatcher.start();
      await dispatcher.app.listen({ host, port });
      return async (signal) => {
        logger.info({ signal }, "shutting down: no new dispatches; running runners stay alive until their job ends or their TTL");
        await dispatcher.stop();
        await deps.store.close();
        logger.info("stopped");
      };
    },
  }),
);
