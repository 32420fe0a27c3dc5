// What counting metrics costs a topic, without the noise of a whole bus (docs/observability.md):
// the TopicMetrics calls a topic makes per commit, per delivered frame and per publish, timed
// over many iterations, and the heap they leave behind (none per call is the goal).
// node --expose-gc bench/probe/metrics-cost.ts [--iterations 5000000]
import { TopicMetrics } from "../../objects/topic-metrics.ts";

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const iterations = Number(arg("iterations") ?? 5_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
let reports = 0;
const metrics = new TopicMetrics({ changed: () => reports++ });
const batch = { first: 0, time: Date.now(), bodies: ["x", "y", "z", "w", "v", "u", "t", "s", "r", "q"] };

function measure(name: string, perCall: number, fn: (i: number) => void): void {
  for (let i = 0; i < 100_000; i++) fn(i); // warm up
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - start) / iterations;
  const heapAfter = process.memoryUsage().heapUsed; // before any gc: what the calls left behind
  console.log(
    `${name.padEnd(44)} ${ns.toFixed(1).padStart(6)} ns/call  ${(ns / perCall).toFixed(2).padStart(6)} ns/message  heap +${((heapAfter - heapBefore) / iterations).toFixed(3)} B/call`,
  );
  if (metrics.take().published < 0) console.log("unreachable"); // keep the counts alive, start fresh
}

console.log(`${iterations} calls each${gc ? "" : " (run with --expose-gc for the heap figures)"}`);
measure("onCommit (a commit of 10 messages)", 10, () => metrics.onCommit(batch));
measure("committed + published (one publish)", 1, (i) => {
  metrics.committed(i, i + 2);
  metrics.published(i, i + 3);
});
measure("delivered (a frame of 10 messages)", 10, (i) => metrics.delivered(10, i & 63));
measure("delivered (a frame of 1 message)", 1, (i) => metrics.delivered(1, i & 63));
measure("paused + failed(nack) + deadLettered", 1, () => {
  metrics.paused();
  metrics.failed("nack");
  metrics.deadLettered();
});
