import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FakeForgejo } from "../fakes/forgejo/index.js";
import type { FakeNscInstance } from "../fakes/nsc/index.js";
import type { Replica } from "./cluster.js";

/**
 * What the chaos test knows about some jobs, written to a file that outlives the test's temporary
 * folder: the fake Forgejo's view (who took the job), every runner record that names the job or
 * that runner (with its history, from the dispatcher's API), the instances carrying those names,
 * and every replica's log lines that mention them. A failed check prints the file's path.
 */
export async function diagnose(
  jobIds: readonly string[],
  ctx: {
    forgejo: FakeForgejo;
    instances: readonly FakeNscInstance[];
    replicas: readonly Replica[];
    runner: (name: string) => Promise<unknown>;
    runners: readonly { name: string; job: { id: number } | null }[];
  },
): Promise<string> {
  const report: Record<string, unknown> = {};
  for (const id of jobIds) {
    const job = ctx.forgejo.job(Number(id));
    const takenBy = ctx.forgejo.state.runners.find((r) => r.id === job?.runnerId);
    const names = new Set(ctx.runners.filter((r) => String(r.job?.id) === id).map((r) => r.name));
    if (takenBy) names.add(takenBy.name);
    const records: Record<string, unknown> = {};
    for (const n of names) records[n] = await ctx.runner(n).catch((e: unknown) => String(e));
    const logs = ctx.replicas.flatMap((r) =>
      r
        .incarnations()
        .flatMap(({ pid, lines }) =>
          lines
            .filter((l) => [...names].some((n) => JSON.stringify(l).includes(n)) || JSON.stringify(l).includes(`"job":${id}`))
            .map((l) => ({ replica: r.name, pid, ...l })),
        ),
    );
    report[id] = {
      job,
      takenBy: takenBy ? { id: takenBy.id, name: takenBy.name } : null,
      records,
      instances: ctx.instances.filter((i) => [...names].some((n) => JSON.stringify(i).includes(n))),
      logs,
    };
  }
  const file = join(mkdtempSync(join(tmpdir(), "fnsc-chaos-report-")), "report.json");
  writeFileSync(file, JSON.stringify(report, null, 2));
  return file;
}
