#!/usr/bin/env node
import { createAutoscaler } from "../autoscaler/app.js";
import { buildAutoscalerDeps } from "../autoscaler/wiring.js";
import { autoscalerConfigSchema, configWarnings, targetName } from "../config/autoscaler-schema.js";
import { splitListen } from "../config/common.js";
import { formatDuration } from "../config/duration.js";
import { scopeKey } from "../forgejo/scope.js";
import { openAutoscalerReplicas } from "../ha/autoscaler-replicas.js";
import { createLogger } from "../http/logger.js";
import { daemonMain, runDaemon } from "./daemon-main.js";

runDaemon("forgejo-nsc-autoscaler", () =>
  daemonMain({
    name: "forgejo-nsc-autoscaler",
    schema: autoscalerConfigSchema,
    configEnv: "FORGEJO_NSC_AUTOSCALER_CONFIG",
    warnings: configWarnings,
    describe: (config) =>
      config.instances.map(
        (inst) =>
          `  ${inst.name}: ${inst.forgejo.base_url} (${scopeKey(inst.scope)}), poll every ${formatDuration(inst.poll_interval)}, ` +
          `targets: ${inst.targets.map((t) => targetName(t)).join(", ")}, webhook at /webhook/${inst.name}`,
      ),
    async run(config) {
      const logger = createLogger(config.log.level, "forgejo-nsc-autoscaler");
      // With `replicas`: the lease and the webhook relay in PostgreSQL (docs/replicas.md).
      const replicas = await openAutoscalerReplicas(config, logger);
      const autoscaler = await createAutoscaler({ ...buildAutoscalerDeps(config, logger), replicas });
      const { host, port } = splitListen(config.listen);
      await autoscaler.app.listen({ host, port });
      autoscaler.start();
      return async (signal) => {
        logger.info({ signal }, "shutting down: finishing the reconcile in progress; runners already requested are the dispatcher's");
        await autoscaler.stop();
        logger.info("stopped");
      };
    },
  }),
);
