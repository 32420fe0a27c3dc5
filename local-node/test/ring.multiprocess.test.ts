/**
 * Real processes: a producer and consumers in separate Node processes over one /dev/shm segment,
 * with kill -9 and SIGSTOP to prove crash safety and stale-consumer skipping. Watchdogs only.
 */
import { afterEach, describe, expect, it } from "vitest";
import { FULL, Ring, type RingError } from "../src/index.ts";
import { type Child, cleanupRings, freshName, killQuietly, spawnChild } from "./helpers.ts";

const children: Child[] = [];
function start(args: string[]): Child {
  const child = spawnChild(args);
  children.push(child);
  return child;
}

afterEach(() => {
  for (const child of children.splice(0)) killQuietly(child);
  cleanupRings();
});

interface GenRange {
  first: number;
  last: number;
  count: number;
  breaks: number;
}
interface ConsumerReport {
  stopped: boolean;
  gens: Record<string, GenRange>;
  bad: number;
  gaps: { from: number; to: number; reason: string }[];
  stats: { corrupt: number; lostBytes: number };
}

const isReady = (m: Record<string, unknown>): boolean => m.ready === true;
const isDone = (m: Record<string, unknown>): boolean => m.done === true;

describe("Ring across processes", () => {
  it("delivers every CRC-checked record, in order, from a producer process to two consumer processes", async () => {
    const ring = freshName("mp");
    Ring.create(ring, { capacity: 1 << 16, crc: true }).close();
    const consumers = [start(["consumer", ring]), start(["consumer", ring])];
    await Promise.all(consumers.map((c) => c.waitFor(isReady)));
    const producer = start(["producer", ring, "1", "20000", "stop"]);
    await producer.waitFor(isDone);
    for (const c of consumers) {
      const report = (await c.waitFor(isDone)) as unknown as ConsumerReport;
      expect(report.stopped).toBe(true);
      expect(report.gens["1"]).toEqual({ first: 0, last: 19999, count: 20000, breaks: 0 });
      expect(report.bad).toBe(0);
      expect(report.gaps).toEqual([]);
    }
  });

  it("survives kill -9 of the producer mid-stream: consumers keep their place and a restarted producer continues", async () => {
    const ring = freshName("killprod");
    Ring.create(ring, { capacity: 1 << 16, crc: true }).close();
    const consumers = [start(["consumer", ring]), start(["consumer", ring])];
    await Promise.all(consumers.map((c) => c.waitFor(isReady)));
    const first = start(["endless", ring, "1"]);
    await first.waitFor((m) => typeof m.progress === "number" && m.progress >= 5000);
    first.proc.kill("SIGKILL");
    await first.exited;
    expect(Ring.stat(ring).producerAlive).toBe(false);
    const second = start(["producer", ring, "2", "5000", "stop"]);
    await second.waitFor(isDone);
    for (const c of consumers) {
      const report = (await c.waitFor(isDone)) as unknown as ConsumerReport;
      expect(report.stopped).toBe(true);
      // Everything the first producer published arrived whole and in order; nothing torn or corrupt.
      expect(report.gens["1"]!.first).toBe(0);
      expect(report.gens["1"]!.count).toBeGreaterThanOrEqual(5000);
      expect(report.gens["1"]!.breaks).toBe(0);
      expect(report.gens["2"]).toEqual({ first: 0, last: 4999, count: 5000, breaks: 0 });
      expect(report.bad).toBe(0);
      expect(report.stats.corrupt).toBe(0);
      expect(report.gaps).toEqual([]);
    }
  });

  it("refuses a second producer while the first is alive", async () => {
    const ring = freshName("twoprod");
    const producer = start(["endless", ring, "1"]);
    await producer.waitFor(isReady);
    let code = "";
    try {
      Ring.create(ring);
    } catch (error) {
      code = (error as RingError).code;
    }
    expect(code).toBe("RING_HAS_PRODUCER");
  });

  it("does not let a consumer killed with -9 stall the producer, and reuses its slot", async () => {
    const ring = freshName("killcons");
    Ring.create(ring, { capacity: 1 << 16, maxConsumers: 2 }).close();
    const doomed = start(["consumer", ring]);
    const survivor = start(["consumer", ring]);
    await Promise.all([doomed.waitFor(isReady), survivor.waitFor(isReady)]);
    doomed.proc.kill("SIGKILL");
    await doomed.exited;
    // 20,000 records of 120 bytes are ~37 rings' worth: the producer must get past the dead slot.
    const producer = start(["producer", ring, "1", "20000", "stop"]);
    const done = await producer.waitFor(isDone);
    expect(done.sent).toBe(20000);
    expect(done.evictions).toBe(1);
    const report = (await survivor.waitFor(isDone)) as unknown as ConsumerReport;
    expect(report.gens["1"]).toEqual({ first: 0, last: 19999, count: 20000, breaks: 0 });
    expect(report.gaps).toEqual([]);
    await survivor.exited; // it closes (frees its slot) after reporting
    // Both slots are usable again: the survivor's was freed, the dead one is reclaimed.
    const a = Ring.open(ring);
    const b = Ring.open(ring);
    expect(new Set([a.slot, b.slot])).toEqual(new Set([0, 1]));
    a.close();
    b.close();
  });

  it("skips a stopped consumer after the staleness limit; after SIGCONT it sees the gap and rejoins", async () => {
    const ring = freshName("stale");
    Ring.create(ring, { capacity: 1 << 16, stalenessMs: 200 }).close();
    const sleeper = start(["consumer", ring]);
    const awake = start(["consumer", ring]);
    await Promise.all([sleeper.waitFor(isReady), awake.waitFor(isReady)]);
    sleeper.proc.kill("SIGSTOP");
    const producer = start(["producer", ring, "1", "5000"]);
    const done = await producer.waitFor(isDone);
    expect(done.sent).toBe(5000);
    expect(done.evictions).toBe(1);
    await producer.exited;
    sleeper.proc.kill("SIGCONT");
    const gap = await sleeper.waitFor((m) => m.gap !== undefined);
    expect((gap.gap as { reason: string }).reason).toBe("evicted");
    // The test process becomes the producer and sends a last generation and the stop record.
    const w = Ring.create(ring);
    for (let seq = 0; seq < 10; seq++) {
      const rec = new Uint8Array(100);
      const view = new DataView(rec.buffer);
      view.setUint32(0, 2, true);
      view.setUint32(4, seq, true);
      for (let i = 8; i < 100; i++) rec[i] = (seq + i) & 0xff;
      expect(w.publish(rec, 1)).not.toBe(FULL);
    }
    w.publish(new Uint8Array(8), 2);
    w.close();
    const late = (await sleeper.waitFor(isDone)) as unknown as ConsumerReport;
    expect(late.gaps.length).toBeGreaterThanOrEqual(1);
    expect(late.gaps[0]!.reason).toBe("evicted");
    expect(late.stats.lostBytes).toBeGreaterThan(0);
    expect(late.gens["2"]).toEqual({ first: 0, last: 9, count: 10, breaks: 0 });
    const onTime = (await awake.waitFor(isDone)) as unknown as ConsumerReport;
    expect(onTime.gens["1"]).toEqual({ first: 0, last: 4999, count: 5000, breaks: 0 });
    expect(onTime.gaps).toEqual([]);
  });

  it("takes back the doorbell count of a consumer killed while asleep", async () => {
    const ring = freshName("deadsleeper");
    const w = Ring.create(ring, { capacity: 4096 });
    const waiter = start(["waiter", ring, "1"]);
    await waiter.waitFor(isReady);
    const asleepBy = Date.now() + 30_000; // watchdog only
    while (Ring.stat(ring).waitingConsumers === 0 && Date.now() < asleepBy) await new Promise((r) => setTimeout(r, 5));
    waiter.proc.kill("SIGKILL");
    await waiter.exited;
    // The dead sleeper still counts: the producer would pay a FUTEX_WAKE per publish.
    expect(Ring.stat(ring).waitingConsumers).toBe(1);
    const r = Ring.open(ring); // any open (or a producer adopting) heals it
    expect(Ring.stat(ring).waitingConsumers).toBe(0);
    r.close();
    w.close();
  });

  it("wakes a consumer blocked in wait() in another process (shared futex, not Atomics.notify)", async () => {
    const ring = freshName("wake");
    const w = Ring.create(ring, { capacity: 4096 });
    const waiter = start(["waiter", ring, "3"]);
    await waiter.waitFor(isReady);
    for (let i = 1; i <= 3; i++) {
      // Publish only once the waiter is asleep on the doorbell (its waiter count is up).
      const asleepBy = Date.now() + 30_000; // watchdog only
      while (Ring.stat(ring).waitingConsumers === 0 && Date.now() < asleepBy) await new Promise((r) => setTimeout(r, 5));
      w.publish(Uint8Array.of(i));
      await waiter.waitFor((m) => m.woke === true && m.byte === i);
    }
    const done = await waiter.waitFor(isDone);
    expect(done.wakes).toBe(3);
    w.close();
  });
});
