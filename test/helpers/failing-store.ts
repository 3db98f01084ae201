import { StateUnavailableError } from "../../src/store/errors.js";
import type {
  CreateDispatchOptions,
  CreateDispatchResult,
  DispatchRecord,
  RunnerFields,
  RunnerFilter,
  RunnerPatch,
  RunnerRecord,
  RunnerState,
  Store,
  WriteFence,
} from "../../src/store/types.js";

/** A write the wrapped store was asked for. */
export interface WriteCall {
  method: "createDispatch" | "transition" | "update" | "pruneFinished";
  runner?: string;
  to?: RunnerState;
}

/**
 * A Store whose writes fail while told to, as a full or read-only disk makes every write of the
 * real one fail (the SQLite store turns those into StateUnavailableError; see
 * test/store/sqlite-availability.test.ts). Reads keep working, as they do in WAL mode.
 */
export class FailingStore implements Store {
  private failing: ((call: WriteCall) => boolean) | undefined;
  /** Every write refused, in order. */
  readonly refused: WriteCall[];
  readonly message =
    "state database /var/lib/forgejo-nsc/dispatcher.db cannot be written: the disk is full (SQLITE_FULL); free space on its file system; the dispatcher keeps retrying by itself";

  /** `failing`: which writes to refuse from the start (see failWrites). */
  constructor(
    private readonly inner: Store,
    failing?: (call: WriteCall) => boolean,
    refused: WriteCall[] = [],
  ) {
    this.failing = failing;
    this.refused = refused;
  }

  /** Refuses every write (or those `which` selects) until heal(). */
  failWrites(which: (call: WriteCall) => boolean = () => true): void {
    this.failing = which;
  }

  heal(): void {
    this.failing = undefined;
  }

  private guard(call: WriteCall): void {
    if (this.failing?.(call)) {
      this.refused.push(call);
      throw new StateUnavailableError(this.message);
    }
  }

  async createDispatch(dispatch: DispatchRecord, runners: RunnerRecord[], options?: CreateDispatchOptions): Promise<CreateDispatchResult> {
    this.guard({ method: "createDispatch" });
    return this.inner.createDispatch(dispatch, runners, options);
  }

  async transition(
    name: string,
    from: readonly RunnerState[],
    to: RunnerState,
    reason: string,
    patch?: RunnerPatch,
    at?: Date,
  ): Promise<RunnerRecord | undefined> {
    this.guard({ method: "transition", runner: name, to });
    return this.inner.transition(name, from, to, reason, patch, at);
  }

  async update(name: string, patch: RunnerPatch, at?: Date): Promise<RunnerRecord | undefined> {
    this.guard({ method: "update", runner: name });
    return this.inner.update(name, patch, at);
  }

  async pruneFinished(before: Date): Promise<number> {
    this.guard({ method: "pruneFinished" });
    return this.inner.pruneFinished(before);
  }

  async writeProblem(): Promise<string | undefined> {
    return this.failing ? this.message : this.inner.writeProblem();
  }

  getDispatch(id: string): Promise<DispatchRecord | undefined> {
    return this.inner.getDispatch(id);
  }

  getDispatchByKey(key: string): Promise<DispatchRecord | undefined> {
    return this.inner.getDispatchByKey(key);
  }

  getRunner(name: string): Promise<RunnerRecord | undefined> {
    return this.inner.getRunner(name);
  }

  listRunners(filter?: RunnerFilter): Promise<RunnerRecord[]> {
    return this.inner.listRunners(filter);
  }

  listRunnersWithoutHistory(filter?: RunnerFilter): Promise<RunnerFields[]> {
    return this.inner.listRunnersWithoutHistory(filter);
  }

  countRunners(states: readonly RunnerState[]): Promise<number> {
    return this.inner.countRunners(states);
  }

  /** The inner store's fenced view, refusing what this one refuses (while it does). */
  fenced(fence: WriteFence): Store {
    return new FailingStore(this.inner.fenced(fence), (call) => this.failing?.(call) ?? false, this.refused);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
