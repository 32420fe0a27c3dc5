// The many-topics case's checks and its report section, without a bus.
import { describe, expect, it } from "vitest";
import { checkManyTopics, latencies, manyTopicsConfig, residual, type ManyTopicsResult, type Probe, type WaveResult } from "../lib/many-topics.ts";
import { renderManyTopics } from "../lib/report.ts";

const config = manyTopicsConfig(true);
const probe = (rssMB: number, extra: Partial<Probe> = {}): Probe => ({
  rssMB,
  anonMB: rssMB / 2,
  fds: 50,
  topicFileFds: 0,
  openTopics: 0,
  socketFds: 8,
  healthMs: 3,
  freshPublishMs: latencies([10, 12, 14], 0),
  oldPublishMs: latencies([8, 9, 30], 0),
  ...extra,
});
const wave = (n: number, extra: Partial<WaveResult> = {}): WaveResult => ({
  wave: n,
  topicsSoFar: n * 250,
  created: 250,
  failed: 0,
  createMs: 2000,
  topicsPerSec: 125,
  healthDuringWave: latencies([20, 40, 90], 0),
  peakDuringWave: { rssMB: 180, fds: 800, openTopics: 250 },
  afterWave: probe(180, { fds: 800, topicFileFds: 750, openTopics: 250 }),
  releasedAfterMs: 10_100,
  afterIdle: probe(170),
  ...extra,
});

describe("many topics", () => {
  it("passes waves that succeeded, stayed responsive, closed their files and reused memory", () => {
    // Wave 1: 250 topics open at 180 MB over a 90 MB baseline = 0.36 MB each; 250 more topics kept 10 MB.
    const waves = [wave(1), wave(2, { afterIdle: probe(190) })];
    expect(checkManyTopics(config, probe(90), waves)).toEqual([]);
    expect(residual(probe(90), waves)!.kbPerTopic).toBeCloseTo(40.96);
    expect(residual(probe(90), waves)!.fraction).toBeCloseTo(10 / 90);
  });
  it("fails on a failed request, a slow /healthz, files left open, or memory that keeps growing", () => {
    // Wave 2 kept all of its 250 topics' memory (250 × 0.36 MB = 90 MB): nothing was reused.
    const problems = checkManyTopics(config, probe(90), [
      wave(1, { failed: 2 }),
      wave(2, {
        healthDuringWave: latencies([20, config.healthBoundMs + 1, config.stallBoundMs + 1], 0),
        releasedAfterMs: null,
        afterIdle: probe(270, { healthMs: null }),
      }),
    ]);
    expect(problems.join("\n")).toMatch(/wave 1: 2 request\(s\) failed/);
    expect(problems.join("\n")).toMatch(/wave 2: 1 request\(s\) failed/);
    expect(problems.join("\n")).toMatch(/wave 2: \/healthz p90/);
    expect(problems.join("\n")).toMatch(/wave 2: a \/healthz took/);
    expect(problems.join("\n")).toMatch(/wave 2: topic files still open/);
    expect(problems.join("\n")).toMatch(/memory not reused: 369 KB kept per topic created after wave 1, 1.00 of an open topic's 369 KB/);
  });
  it("takes percentiles from the samples and counts failures apart", () => {
    expect(latencies([5, 1, 3, 2, 4], 1)).toEqual({ n: 6, failed: 1, p50Ms: 3, p90Ms: 5, p99Ms: 5, maxMs: 5 });
    expect(latencies([], 0)).toMatchObject({ n: 0, maxMs: 0 });
  });
  it("renders both tables, the verdict, and files never closed", () => {
    const result: ManyTopicsResult = {
      ok: false,
      problems: ["wave 2: topic files still open 30 s after its last request (idle objects were not evicted)"],
      config,
      fdLimit: 20_000,
      baseline: probe(90),
      waves: [wave(1), wave(2, { releasedAfterMs: null })],
      summary: { topicsCreated: 512, mbPerOpenTopic: 0.33, releasedAfterMinS: 10.05, releasedAfterMaxS: null },
      durationMs: 40_000,
    };
    const md = renderManyTopics(result).join("\n");
    expect(md).toContain("## 8. Many topics on one local bus");
    expect(md).toContain("**failed**: wave 2: topic files still open");
    expect(md).toContain("**never**");
    expect(md).toContain("| topicsCreated | 512 |");
    expect(md).toContain("| releasedAfterMinS | 10.1 s |");
    expect(md).toContain("| releasedAfterMaxS | – |");
    expect(md).not.toContain("NaN");
    expect(renderManyTopics({ error: "bus did not start" }).join("\n")).toContain("**failed**: bus did not start");
  });
});
