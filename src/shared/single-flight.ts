/**
 * Runs one pass at a time: `kick()` starts a pass, or, while one is running, asks for exactly one
 * more after it (any number of kicks during a pass cause one more pass, not many). A pass that
 * throws is reported to `onError` and does not stop later passes. After `stop()` kicks do nothing;
 * `idle()` resolves when no pass is running.
 */
export class SingleFlight {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  get busy(): boolean {
    return this.running !== undefined;
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.onError(err))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves once the current pass (and the one it asked for, if any) is over. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
    this.again = false;
  }
}
