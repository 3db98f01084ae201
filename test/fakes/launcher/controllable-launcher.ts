import type { InstanceInfo, LaunchResult, LaunchSpec, Launcher } from "../../../src/namespace/launcher.js";
import { LaunchError } from "../../../src/namespace/launcher.js";
import type { Platform } from "../../../src/store/types.js";

interface PendingLaunch {
  spec: LaunchSpec;
  resolve: (r: LaunchResult) => void;
  reject: (e: Error) => void;
}

/**
 * A Launcher whose launches complete when the test says so, for scheduling tests that need exact
 * control over timing (launch slots, cancellation races). Records every call. End-to-end tests use
 * the real launchers against the fake `nsc` instead.
 */
export class ControllableLauncher implements Launcher {
  readonly launches: LaunchSpec[] = [];
  readonly destroyed: string[] = [];
  readonly listCalls: Record<string, string>[] = [];
  readonly instances = new Map<string, InstanceInfo>();
  private readonly waiting: PendingLaunch[] = [];
  private seq = 0;
  /** When set, launches finish at once. */
  autoComplete = false;
  failList = 0;

  constructor(readonly platform: Platform = "linux") {}

  launch(spec: LaunchSpec): Promise<LaunchResult> {
    this.launches.push(spec);
    return new Promise((resolve, reject) => {
      const p = { spec, resolve, reject };
      if (this.autoComplete) this.complete(p);
      else this.waiting.push(p);
    });
  }

  get inProgress(): string[] {
    return this.waiting.map((w) => w.spec.runnerName);
  }

  private complete(p: PendingLaunch): string {
    this.seq += 1;
    const id = `inst${String(this.seq).padStart(9, "0")}`;
    this.instances.set(id, { instanceId: id, labels: { ...p.spec.instanceLabels } });
    p.resolve({ instanceId: id });
    return id;
  }

  /** Completes the oldest waiting launch (or the named one) and returns the instance id. */
  finishLaunch(runnerName?: string): string {
    const i = runnerName ? this.waiting.findIndex((w) => w.spec.runnerName === runnerName) : 0;
    const [p] = this.waiting.splice(i, 1);
    if (!p) throw new Error(`no launch in progress${runnerName ? ` for ${runnerName}` : ""}`);
    return this.complete(p);
  }

  failLaunch(kind: LaunchError["kind"], message: string, runnerName?: string): void {
    const i = runnerName ? this.waiting.findIndex((w) => w.spec.runnerName === runnerName) : 0;
    const [p] = this.waiting.splice(i, 1);
    if (!p) throw new Error("no launch in progress");
    p.reject(new LaunchError(message, kind));
  }

  /** The job ended: the instance goes away by itself (TERMINATE_ON_EXIT). */
  endInstance(id: string): void {
    this.instances.delete(id);
  }

  async list(labels: Record<string, string>): Promise<InstanceInfo[]> {
    this.listCalls.push(labels);
    if (this.failList > 0) {
      this.failList -= 1;
      throw new LaunchError("invocation error: unavailable", "transient");
    }
    return [...this.instances.values()].filter((i) => Object.entries(labels).every(([k, v]) => i.labels[k] === v));
  }

  async destroy(instanceId: string): Promise<void> {
    this.destroyed.push(instanceId);
    this.instances.delete(instanceId);
  }
}
