import { describe, expect, it } from "vitest";
import { effectiveMinIdle, periodActive } from "../../src/autoscaler/schedule.js";

const t = (iso: string) => Date.parse(iso);

// Weekdays 08:00–18:00 Europe/Berlin, 3 warm runners; 0 otherwise.
const office = {
  min_idle: 0,
  timezone: "Europe/Berlin",
  min_idle_schedule: [{ cron: "0 8 * * 1-5", until: "0 18 * * 1-5", min_idle: 3 }],
};

describe("effectiveMinIdle across the spring DST change (Europe/Berlin, 2026-03-29)", () => {
  it("follows local 08:00 when the UTC offset moves from +1 to +2", () => {
    // Friday 27 March, CET (UTC+1): 08:00 local = 07:00Z.
    expect(effectiveMinIdle(office, t("2026-03-27T06:59:59Z")).minIdle).toBe(0);
    expect(effectiveMinIdle(office, t("2026-03-27T07:00:00Z"))).toEqual({ minIdle: 3, period: 0 });
    expect(effectiveMinIdle(office, t("2026-03-27T16:59:59Z")).minIdle).toBe(3);
    expect(effectiveMinIdle(office, t("2026-03-27T17:00:00Z")).minIdle).toBe(0);
    // The weekend, across the switch itself.
    expect(effectiveMinIdle(office, t("2026-03-28T09:00:00Z")).minIdle).toBe(0);
    expect(effectiveMinIdle(office, t("2026-03-29T09:00:00Z")).minIdle).toBe(0);
    // Monday 30 March, CEST (UTC+2): 08:00 local = 06:00Z; 07:00Z was the old start.
    expect(effectiveMinIdle(office, t("2026-03-30T05:59:59Z")).minIdle).toBe(0);
    expect(effectiveMinIdle(office, t("2026-03-30T06:00:00Z")).minIdle).toBe(3);
    expect(effectiveMinIdle(office, t("2026-03-30T15:59:59Z")).minIdle).toBe(3);
    expect(effectiveMinIdle(office, t("2026-03-30T16:00:00Z")).minIdle).toBe(0);
  });
});

describe("effectiveMinIdle across the autumn DST change (Europe/Berlin, 2026-10-25)", () => {
  it("follows local 08:00 when the UTC offset moves from +2 to +1", () => {
    // Friday 23 October, CEST: 08:00 = 06:00Z.
    expect(effectiveMinIdle(office, t("2026-10-23T05:59:00Z")).minIdle).toBe(0);
    expect(effectiveMinIdle(office, t("2026-10-23T06:00:00Z")).minIdle).toBe(3);
    // Monday 26 October, CET: 08:00 = 07:00Z.
    expect(effectiveMinIdle(office, t("2026-10-26T06:30:00Z")).minIdle).toBe(0);
    expect(effectiveMinIdle(office, t("2026-10-26T07:00:00Z")).minIdle).toBe(3);
    expect(effectiveMinIdle(office, t("2026-10-26T17:00:00Z")).minIdle).toBe(0);
  });

  it("a duration period that spans the repeated hour lasts its real length", () => {
    // Starts 01:30 local on the night the clock goes from 03:00 back to 02:00 (CEST→CET).
    const night = { cron: "30 1 * * *", duration: 2 * 3_600_000, min_idle: 1 };
    // 01:30 CEST on 25 Oct = 23:30Z on the 24th; two real hours later is 01:30Z.
    expect(periodActive(night, "Europe/Berlin", t("2026-10-24T23:29:59Z"))).toBe(false);
    expect(periodActive(night, "Europe/Berlin", t("2026-10-24T23:30:00Z"))).toBe(true);
    expect(periodActive(night, "Europe/Berlin", t("2026-10-25T01:29:59Z"))).toBe(true);
    expect(periodActive(night, "Europe/Berlin", t("2026-10-25T01:30:00Z"))).toBe(false);
  });
});

describe("schedule rules", () => {
  it("a period given by duration is [start, start + duration)", () => {
    const p = { cron: "0 9 * * *", duration: 3_600_000, min_idle: 2 };
    expect(periodActive(p, "UTC", t("2026-05-05T08:59:59Z"))).toBe(false);
    expect(periodActive(p, "UTC", t("2026-05-05T09:00:00Z"))).toBe(true);
    expect(periodActive(p, "UTC", t("2026-05-05T09:59:59Z"))).toBe(true);
    expect(periodActive(p, "UTC", t("2026-05-05T10:00:00Z"))).toBe(false);
  });

  it("the last active entry wins, so a later entry can lower the pool", () => {
    const spec = {
      min_idle: 1,
      timezone: "UTC",
      min_idle_schedule: [
        { cron: "0 8 * * *", until: "0 18 * * *", min_idle: 4 },
        // 24 December all day: nobody works.
        { cron: "0 0 24 12 *", duration: 86_400_000, min_idle: 0 },
      ],
    };
    expect(effectiveMinIdle(spec, t("2026-12-23T10:00:00Z"))).toEqual({ minIdle: 4, period: 0 });
    expect(effectiveMinIdle(spec, t("2026-12-24T10:00:00Z"))).toEqual({ minIdle: 0, period: 1 });
    expect(effectiveMinIdle(spec, t("2026-12-24T20:00:00Z"))).toEqual({ minIdle: 0, period: 1 });
    expect(effectiveMinIdle(spec, t("2026-12-25T20:00:00Z"))).toEqual({ minIdle: 1, period: undefined });
  });

  it("every-minute patterns stay cheap (a daemon evaluates them every pass)", () => {
    const p = { cron: "* * * * *", duration: 30_000, min_idle: 1 };
    const started = performance.now();
    for (let i = 0; i < 200; i++) periodActive(p, "UTC", t("2026-05-05T09:00:10Z") + i * 1000);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(periodActive(p, "UTC", t("2026-05-05T09:00:10Z"))).toBe(true);
    expect(periodActive(p, "UTC", t("2026-05-05T09:00:40Z"))).toBe(false);
  });
});

describe("dense patterns", () => {
  it("finds the last start of an every-minute-in-office-hours pattern quickly and exactly", () => {
    const p = { cron: "* 8-17 * * 1-5", duration: 90_000, min_idle: 1 };
    const started = performance.now();
    // Tuesday 17:59:30 UTC: the last start was 17:59:00, still inside its 90 s.
    expect(periodActive(p, "UTC", t("2026-05-05T17:59:30Z"))).toBe(true);
    // 18:00:31: last start 17:59:00, over 90 s ago.
    expect(periodActive(p, "UTC", t("2026-05-05T18:00:31Z"))).toBe(false);
    // Wednesday 07:59: the last start was Tuesday 17:59.
    expect(periodActive(p, "UTC", t("2026-05-06T07:59:00Z"))).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
