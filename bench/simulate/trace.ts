/**
 * The run a job belongs to: a push (Forgejo sends a push webhook) or a schedule (no webhook until
 * the run ends). Forgejo sends one action_run_* webhook when the run's last job ends.
 */
export interface TraceRun {
  id: number;
  trigger: "push" | "schedule";
  /** Loss draws of the run's own deliveries, as for jobs below. */
  draws: { started: number; finished: number };
}

/** What a trace is: the jobs a forge will see, independent of any policy or loss rate. */
export interface TraceJob {
  id: number;
  /** When the job becomes waiting (ms since the epoch). */
  arrival: number;
  runsOn: string[];
  /** How long it runs once a runner has it. */
  durationMs: number;
  run: TraceRun;
  /**
   * One uniform draw in [0, 1) per workflow_job delivery about this job (Gitea/GitHub style); a delivery is lost when its draw
   * is below the loss rate. Drawn with the trace, so every policy loses the same deliveries and the
   * deliveries lost at 5 % are among those lost at 50 %.
   */
  draws: { queued: number; started: number; completed: number };
}

export interface Trace {
  name: string;
  description: string;
  /** The simulation starts here (the first pass of every policy). */
  start: number;
  /** The last job arrives before this; the run goes on for a drain period after it. */
  end: number;
  jobs: TraceJob[];
}
