/** Runs the tasks with at most `limit` in flight; a task that throws is reported and the rest go on. */
export async function runLimited(
  tasks: readonly (() => Promise<unknown>)[],
  limit: number,
  onError: (err: unknown) => void,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++] as () => Promise<unknown>;
      await task().catch(onError);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
