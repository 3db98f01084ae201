import type { Logger } from "pino";
import type { InstanceConfig } from "../config/autoscaler-schema.js";
import type { ForgejoApi, ServerInfo } from "../forgejo/types.js";
import { describeServer } from "../forgejo/version.js";
import { errorMessage } from "../shared/error-message.js";
import { pollingImpossible, webhooksOnly } from "./observe.js";
import type { Mode } from "./status.js";

const REDETECT_MS = 10 * 60_000;

export interface ServerModeOptions {
  config: InstanceConfig;
  api: ForgejoApi;
  log: Logger;
  /** resync_interval in force (0: webhooks only once workflow_job deliveries arrive). */
  resyncMs: number;
  /** First and largest pause between attempts to reach Forgejo at start. */
  detectRetryMs?: { first: number; max: number } | undefined;
  /** Forgejo could not be asked for its version (start retries in the background). */
  onDetectError: (message: string) => void;
  /** The server is known and can be served: passes may begin. */
  onReady: () => void;
}

/**
 * What the server is and how an instance is watched. Detection asks Forgejo for its version until
 * it answers, then picks the mode: Forgejo is always polled; Gitea 1.24 (no jobs API) is served
 * from webhooks only; with disable_polling, resync (or webhooks with resync_interval 0). Polling
 * Gitea switches to resync/webhooks after a pass that follows the first workflow_job delivery.
 */
export class ServerMode {
  info: ServerInfo | undefined;
  /** Set when the instance cannot be served at all (e.g. Forgejo <= 10). */
  startupError: string | undefined;
  mode: Mode = "polling";
  /** Why the mode is what it is when the operator did not choose it (Gitea 1.24: webhooks only). */
  modeReason: string | undefined;
  workflowJobSeen = false;
  private pendingSwitch = false;
  private stopped = false;
  private detectTimer: NodeJS.Timeout | undefined;
  private infoAt = performance.now();
  private resolveInfo!: (info: ServerInfo) => void;
  private readonly infoReady = new Promise<ServerInfo>((resolve) => {
    this.resolveInfo = resolve;
  });

  constructor(private readonly opts: ServerModeOptions) {}

  /** Starts detection in the background; it retries until Forgejo answers. */
  start(): void {
    void this.detect(this.opts.detectRetryMs?.first ?? 1000);
  }

  /** Resolves with the ServerInfo once Forgejo has answered (webhook setup waits for it). */
  serverInfo(): Promise<ServerInfo> {
    return this.infoReady;
  }

  /** Whether passes can run: the server is known and can be served. */
  get ready(): boolean {
    return this.info !== undefined && !this.startupError;
  }

  private async detect(delay: number): Promise<void> {
    if (this.stopped) return;
    let info: ServerInfo;
    try {
      info = await this.opts.api.serverInfo();
    } catch (err) {
      const max = this.opts.detectRetryMs?.max ?? 60_000;
      this.opts.onDetectError(`cannot read the server version: ${errorMessage(err)}`);
      this.opts.log.warn({ err: errorMessage(err), retryInMs: delay }, "Forgejo is not reachable yet; retrying in the background");
      this.detectTimer = setTimeout(() => void this.detect(Math.min(delay * 2, max)), delay);
      return;
    }
    this.info = info;
    this.infoAt = performance.now();
    this.resolveInfo(info);
    const impossible = pollingImpossible(info);
    if (impossible) {
      this.startupError = impossible;
      this.opts.log.error({ server: describeServer(info) }, impossible);
      return;
    }
    this.chooseMode(info);
    this.opts.log.info({ server: describeServer(info), mode: this.mode, handles: info.jobHandles }, "watching instance");
    this.opts.onReady();
  }

  private chooseMode(info: ServerInfo): void {
    const c = this.opts.config;
    const onlyWebhooks = webhooksOnly(info);
    if (info.kind === "forgejo") {
      this.mode = "polling";
      if (c.disable_polling) {
        this.opts.log.warn(
          "disable_polling is ignored: Forgejo sends no workflow_job webhooks, so it is always polled (webhooks only make a reconcile happen sooner)",
        );
      }
    } else if (onlyWebhooks) {
      this.mode = "webhooks";
      this.modeReason = onlyWebhooks;
      this.opts.log.warn({ server: describeServer(info) }, onlyWebhooks);
    } else if (c.disable_polling) {
      this.mode = this.resyncMode();
    }
  }

  private resyncMode(): Mode {
    return this.opts.resyncMs > 0 ? "resync" : "webhooks";
  }

  /** Forgejo may be upgraded under us (14 → 15 brings handles): look at the version again now and then. */
  async refresh(): Promise<void> {
    if (performance.now() - this.infoAt < REDETECT_MS) return;
    this.infoAt = performance.now();
    try {
      const info = await this.opts.api.serverInfo();
      if (info.version !== this.info?.version)
        this.opts.log.info({ server: describeServer(info), before: this.info?.version }, "server version changed");
      if (!pollingImpossible(info)) this.info = info;
    } catch {
      // The pass reports Forgejo trouble itself; keep what we knew.
    }
  }

  /** A workflow_job delivery: on Gitea, polling stops after the next complete pass. */
  workflowJobArrived(): void {
    if (this.info?.kind === "forgejo") return;
    this.workflowJobSeen = true;
    if (this.mode === "polling") this.pendingSwitch = true;
  }

  /** After a complete pass: make the switch a workflow_job delivery asked for. */
  passSucceeded(info: ServerInfo): void {
    if (!this.pendingSwitch) return;
    this.pendingSwitch = false;
    // Forgejo never stops polling, even if something sent a workflow_job-shaped delivery.
    if (this.mode === "polling" && info.kind !== "forgejo") {
      this.mode = this.resyncMode();
      this.opts.log.info({ mode: this.mode, resyncInterval: this.opts.resyncMs }, "workflow_job webhooks are arriving; polling stops");
    }
  }

  /** The pause between passes when nothing asks for one sooner; undefined: no timer (webhooks only). */
  regularDelay(pollMs: number): number | undefined {
    if (this.mode === "polling") return pollMs;
    if (this.mode === "resync") return this.opts.resyncMs;
    return undefined;
  }

  stop(): void {
    this.stopped = true;
    if (this.detectTimer) clearTimeout(this.detectTimer);
  }
}
