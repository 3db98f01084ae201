import type { DispatcherConfig } from "../config/dispatcher-schema.js";
import { runnerVersionProblems } from "../config/dispatcher-schema.js";
import type { ForgejoApi, ServerInfo } from "../forgejo/types.js";
import type { RunnerCredentials } from "../namespace/launcher.js";
import type { RunnerRecord } from "../store/types.js";

const INFO_TTL_MS = 10 * 60_000;

/**
 * Gets a runner its Forgejo credentials: on Forgejo >= 15 an ephemeral runner registered over REST
 * (pinned to one job with --handle), otherwise the scope's shared registration token.
 */
export class CredentialSource {
  private info: { value: ServerInfo; at: number } | undefined;
  /** Why "auto" cannot use ephemeral runners with the configured runner version, if it cannot. */
  private readonly oldRunner: string | undefined;
  private warnedOldRunner = false;

  constructor(
    private readonly forgejo: ForgejoApi,
    private readonly config: DispatcherConfig,
    private readonly now: () => Date,
    private readonly warn: (message: string) => void = () => {},
  ) {
    this.oldRunner =
      runnerVersionProblems(config)
        .map(([, problem]) => problem)
        .join("; ") || undefined;
  }

  get instanceUrl(): string {
    return this.config.forgejo.instance_url ?? this.config.forgejo.base_url;
  }

  async serverInfo(): Promise<ServerInfo> {
    const t = this.now().getTime();
    if (!this.info || t - this.info.at > INFO_TTL_MS) {
      this.info = { value: await this.forgejo.serverInfo(), at: t };
    }
    return this.info.value;
  }

  async mode(): Promise<"ephemeral" | "token"> {
    const forced = this.config.forgejo.registration;
    if (forced === "ephemeral" || forced === "token") return forced;
    const info = await this.serverInfo();
    if (!info.runnersApi || info.kind !== "forgejo") return "token";
    if (this.oldRunner) {
      // The server could pin runners to jobs, but this runner release cannot: the shared token still works.
      if (!this.warnedOldRunner) this.warn(`using registration tokens, not ephemeral runners: ${this.oldRunner}`);
      this.warnedOldRunner = true;
      return "token";
    }
    return "ephemeral";
  }

  /**
   * Registers an ephemeral runner; `onRegistered` runs before anything else so the registration is
   * recorded and can be deleted if the launch never completes.
   */
  async obtain(r: RunnerRecord, onRegistered: (id: number) => Promise<void>): Promise<RunnerCredentials> {
    const mode = await this.mode();
    if (mode === "token") {
      return { mode: "token", instanceUrl: this.instanceUrl, registrationToken: await this.forgejo.registrationToken(r.scope) };
    }
    const reg = await this.forgejo.registerRunner(r.scope, {
      name: r.name,
      description: `forgejo-nsc ${this.config.dispatcher.id} dispatch ${r.dispatchId}${r.job ? ` job ${r.job.id}` : ""}`,
      ephemeral: true,
    });
    await onRegistered(reg.id);
    return { mode: "ephemeral", instanceUrl: this.instanceUrl, uuid: reg.uuid, token: reg.token };
  }
}
