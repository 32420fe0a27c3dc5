/**
 * Deterministic, single-process edge cases of the shared-memory ring: every branch of the record
 * path (full, wrap, padding, torn, CRC), the header checks on open, and the producer/consumer
 * lifecycle. Memory is corrupted on purpose through the backing file (MAP_SHARED, so a pwrite
 * lands in every mapping).
 */
import { closeSync, openSync, writeFileSync, writeSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { crc32c, FULL, Ring, RingError, ringPath, type RingGap } from "../src/index.ts";
import { dataOffsetFor, HEAD, MAGIC, RECORD_HEADER_BYTES, recordBytes, SLOTS, VERSION } from "../src/layout.ts";
import { cleanupRings, freshName } from "./helpers.ts";

afterEach(cleanupRings);

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const filled = (length: number, value: number): Uint8Array => new Uint8Array(length).fill(value);

/** pwrite into the segment file at `offset`. */
function poke(name: string, offset: number, data: Uint8Array): void {
  const fd = openSync(ringPath(name), "r+");
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

function u32le(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, true);
  return out;
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RingError);
    expect((error as RingError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe("crc32c", () => {
  it("matches the standard check value", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });
});

describe("Ring record path", () => {
  it("delivers records in order with their offsets, types and bytes", () => {
    const name = freshName("order");
    const w = Ring.create(name, { capacity: 4096 });
    const r = Ring.open(name);
    const o1 = w.publish(bytes(1, 2, 3), 7);
    const o2 = w.publish(bytes(4));
    expect(o1).toBe(0);
    expect(o2).toBe(recordBytes(3));
    const a = r.poll()!;
    expect([a.offset, a.type, [...a.data], a.lost]).toEqual([0, 7, [1, 2, 3], 0]);
    const b = r.poll()!;
    expect([b.offset, b.type, [...b.data]]).toEqual([o2, 0, [4]]);
    expect(r.poll()).toBeNull();
    w.close();
    r.close();
  });

  it("returns FULL when the slowest consumer is a ring behind, and accepts again after it reads", () => {
    const name = freshName("full");
    const w = Ring.create(name, { capacity: 1024 });
    const r = Ring.open(name);
    const record = filled(100, 9); // 120 bytes in the ring
    let accepted = 0;
    while (w.publish(record) !== FULL) accepted++;
    expect(accepted).toBe(Math.floor(1024 / recordBytes(100)));
    expect(r.pollBatch(3)).toHaveLength(3);
    expect(r.poll()).not.toBeNull(); // releases the batch of 3
    expect(w.publish(record)).not.toBe(FULL);
    w.close();
    r.close();
  });

  it("publishBatch is all-or-nothing and returns the last offset", () => {
    const name = freshName("batch");
    const w = Ring.create(name, { capacity: 1024 });
    const r = Ring.open(name);
    const seven = Array.from({ length: 7 }, (_, i) => filled(100, i));
    const last = w.publishBatch(seven);
    expect(last).toBe(6 * recordBytes(100));
    expect(w.publishBatch(seven)).toBe(FULL); // 14 * 120 > 1024: nothing written
    const got = r.pollBatch(100);
    expect(got.map((x) => x.data[0])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(() => w.publishBatch(Array.from({ length: 9 }, () => filled(100, 0)))).toThrow(/exceeds the ring capacity/);
    w.close();
    r.close();
  });

  it("writes a padding record at wrap-around and never splits a record", () => {
    const name = freshName("wrap");
    const w = Ring.create(name, { capacity: 1024 });
    const r = Ring.open(name);
    const seen: number[] = [];
    // 200-byte payloads take 216 bytes: the 5th does not fit in the 160 bytes left before the end.
    for (let i = 0; i < 20; i++) {
      expect(w.publish(filled(200, i))).not.toBe(FULL);
      const rec = r.poll()!;
      expect(rec.data.length).toBe(200);
      expect(rec.data.every((x) => x === i)).toBe(true);
      seen.push(rec.offset);
    }
    // The record after the wrap starts at a multiple of the capacity (offset 1024, 2048, ...).
    expect(seen).toContain(1024);
    expect(seen[4]).toBe(1024); // 4 * 216 = 864; 160 bytes of padding follow
    expect(r.stats.gaps).toBe(0);
    w.close();
    r.close();
  });

  it("skips an implicit pad when fewer than 16 bytes are left before the end", () => {
    const name = freshName("implicit");
    const w = Ring.create(name, { capacity: 1024 });
    const r = Ring.open(name);
    expect(() => w.publish(filled(1000, 1))).toThrow(/exceeds/); // max payload is capacity/2 - 16
    expect([w.publish(filled(488, 1)), w.publish(filled(488, 2))]).toEqual([0, 504]); // 16 bytes left
    expect(r.pollBatch(10)).toHaveLength(2);
    expect(r.poll()).toBeNull(); // releases them
    // 16 left: an explicit header-only padding record, then the record at the wrap.
    expect(w.publish(filled(480, 3))).toBe(1024);
    expect(w.publish(filled(480, 4))).toBe(1520);
    expect(r.pollBatch(10).map((x) => x.offset)).toEqual([1024, 1520]);
    expect(r.poll()).toBeNull();
    expect(w.publish(filled(8, 5))).toBe(2016); // ends at 2040: 8 bytes left, less than a header
    expect(r.poll()!.offset).toBe(2016);
    expect(r.poll()).toBeNull();
    expect(w.publish(filled(8, 6))).toBe(2048); // implicit pad: nothing written in the last 8 bytes
    const rec = r.poll()!;
    expect([rec.offset, rec.data[0]]).toEqual([2048, 6]);
    expect(r.stats.gaps).toBe(0);
    w.close();
    r.close();
  });

  it("carries one type per record in publishBatch and refuses the padding type", () => {
    const name = freshName("types");
    const w = Ring.create(name, { capacity: 4096 });
    const r = Ring.open(name);
    w.publishBatch([bytes(1), bytes(2)], [7, 9]);
    expect(r.pollBatch(10).map((x) => x.type)).toEqual([7, 9]);
    expectCode(() => w.publish(bytes(1), 0xffff), "RING_INVALID");
    expectCode(() => w.publishBatch([bytes(1)], [1, 2]), "RING_INVALID");
    w.close();
    r.close();
  });

  it("drain hands bytes to a callback without allocating records and releases them on return", () => {
    const name = freshName("drain");
    const w = Ring.create(name, { capacity: 2048 });
    const r = Ring.open(name);
    w.publishBatch([bytes(10), bytes(20), bytes(30)]);
    const got: number[] = [];
    expect(r.drain((b, start, length) => got.push(b[start]! + length), 10)).toBe(3);
    expect(got).toEqual([11, 21, 31]);
    expect(Ring.stat(name).consumers[0]!.lagBytes).toBe(0);
    w.close();
    r.close();
  });

  it("keeps positions exact across the 2^32 boundary of the 64-bit head", () => {
    const name = freshName("hi32");
    Ring.create(name, { capacity: 4096 }).close();
    const start = 2 ** 32 - 1024; // a multiple of the capacity
    const head = new Uint8Array(8);
    new DataView(head.buffer).setBigUint64(0, BigInt(start), true);
    poke(name, HEAD, head);
    const w = Ring.create(name);
    const r = Ring.open(name);
    const offsets: number[] = [];
    for (let i = 0; i < 100; i++) {
      const at = w.publish(filled(50, i));
      const rec = r.poll()!;
      expect(rec.offset).toBe(at);
      expect(rec.data[0]).toBe(i);
      offsets.push(at);
    }
    expect(offsets[0]).toBe(start);
    expect(offsets[99]!).toBeGreaterThan(2 ** 32);
    expect(Ring.stat(name).head).toBe(w.position);
    w.close();
    r.close();
  });
});

describe("Ring corruption", () => {
  it("reports a record with a bad CRC32C as corrupt and delivers the next one", () => {
    const name = freshName("crc");
    const w = Ring.create(name, { capacity: 4096, crc: true });
    const gaps: RingGap[] = [];
    const r = Ring.open(name, { onGap: (g) => gaps.push(g) });
    const o1 = w.publish(filled(64, 1));
    w.publish(filled(64, 2));
    // Flip one payload byte of the first record behind the producer's back.
    poke(name, dataOffsetFor(8) + o1 + RECORD_HEADER_BYTES + 10, bytes(0xee));
    const rec = r.poll()!;
    expect(rec.data[0]).toBe(2);
    expect(rec.lost).toBe(recordBytes(64));
    expect(gaps).toEqual([{ from: o1, to: o1 + recordBytes(64), reason: "corrupt" }]);
    expect(r.stats.corrupt).toBe(1);
    w.close();
    r.close();
  });

  it("detects a torn header (position stamp or length wrong) and resyncs to the head", () => {
    const name = freshName("torn");
    const w = Ring.create(name, { capacity: 4096 });
    const gaps: RingGap[] = [];
    const r = Ring.open(name, { onGap: (g) => gaps.push(g) });
    w.publish(filled(32, 1));
    const o2 = w.publish(filled(32, 2));
    w.publish(filled(32, 3));
    const base = dataOffsetFor(8);
    poke(name, base + o2 + 8, u32le(0xdeadbeef)); // stamp of record 2 no longer matches its position
    expect(r.poll()!.data[0]).toBe(1);
    expect(r.poll()).toBeNull();
    expect(gaps).toEqual([{ from: o2, to: w.position, reason: "torn" }]);
    // A length that runs past the head is torn too.
    const o4 = w.publish(filled(32, 4));
    poke(name, base + o4, u32le(1000));
    expect(r.poll()).toBeNull();
    expect(gaps[1]).toEqual({ from: o4, to: w.position, reason: "torn" });
    // And the ring carries on.
    w.publish(filled(32, 5));
    const next = r.poll()!;
    expect(next.data[0]).toBe(5);
    expect(next.lost).toBe(w.position - recordBytes(32) - o2);
    w.close();
    r.close();
  });

  it("never delivers a torn record as data even without CRC: a half-written record stays invisible", () => {
    const name = freshName("halfwritten");
    const w = Ring.create(name, { capacity: 4096, publishEvery: 4 });
    const r = Ring.open(name);
    w.publish(filled(32, 1));
    w.publish(filled(32, 2)); // written, head not yet stored (publishEvery 4)
    expect(r.poll()).toBeNull();
    w.flush();
    expect(r.pollBatch(10).map((x) => x.data[0])).toEqual([1, 2]);
    w.close();
    r.close();
  });
});

describe("Ring header checks", () => {
  it("refuses a foreign file with RING_FOREIGN", () => {
    const name = freshName("foreign");
    writeFileSync(ringPath(name), new Uint8Array(8192).fill(0x41));
    expectCode(() => Ring.open(name), "RING_FOREIGN");
    expectCode(() => Ring.create(name), "RING_FOREIGN");
  });

  it("refuses an empty or tiny file", () => {
    const name = freshName("tiny");
    writeFileSync(ringPath(name), new Uint8Array(16));
    expectCode(() => Ring.open(name), "RING_FOREIGN");
  });

  it("refuses another layout version with RING_VERSION", () => {
    const name = freshName("version");
    Ring.create(name, { capacity: 4096 }).close();
    poke(name, 4, u32le(VERSION + 1));
    expectCode(() => Ring.open(name), "RING_VERSION");
  });

  it("refuses a header whose sizes disagree with the file (RING_MISMATCH)", () => {
    const name = freshName("sizes");
    Ring.create(name, { capacity: 4096 }).close();
    poke(name, 8, u32le(8192));
    expectCode(() => Ring.open(name), "RING_MISMATCH");
    expect(MAGIC).toBe(0x4c545644);
  });

  it("reports a missing ring as RING_NOT_FOUND and a bad name as RING_INVALID", () => {
    expectCode(() => Ring.open(freshName("missing")), "RING_NOT_FOUND");
    expectCode(() => Ring.open("../etc/passwd"), "RING_INVALID");
    expectCode(() => Ring.create(freshName("cap"), { capacity: 3000 }), "RING_INVALID");
  });
});

describe("Ring lifecycle", () => {
  it("lets a new producer adopt a ring after the old one closed, continuing at the head", () => {
    const name = freshName("readopt");
    const w1 = Ring.create(name, { capacity: 4096 });
    const r = Ring.open(name);
    w1.publish(bytes(1));
    w1.close();
    expectCode(() => Ring.create(name, { capacity: 8192 }), "RING_MISMATCH");
    expectCode(() => Ring.create(name, { exclusive: true }), "RING_EXISTS");
    const w2 = Ring.create(name);
    const at = w2.publish(bytes(2));
    expect(at).toBe(recordBytes(1));
    expect(r.pollBatch(10).map((x) => x.data[0])).toEqual([1, 2]);
    w2.close();
    r.close();
  });

  it("skips a consumer that stopped heartbeating and tells it about the gap when it polls again", () => {
    const name = freshName("stale");
    const w = Ring.create(name, { capacity: 1024, stalenessMs: 50 });
    const gaps: RingGap[] = [];
    const sleeper = Ring.open(name, { onGap: (g) => gaps.push(g) });
    const first = w.publish(filled(100, 1));
    let full = 0;
    const stopAt = Date.now() + 30_000; // watchdog only
    let sent = 1;
    while (sent < 40 && Date.now() < stopAt) {
      if (w.publish(filled(100, sent)) === FULL) full++;
      else sent++;
    }
    expect(sent).toBe(40);
    expect(full).toBeGreaterThan(0); // blocked until the consumer went stale
    expect(w.evictions).toBe(1);
    const rec = sleeper.poll();
    expect(rec).toBeNull();
    expect(gaps).toHaveLength(1);
    expect(gaps[0]!.reason).toBe("evicted");
    expect(gaps[0]!.from).toBe(first);
    // Rejoined at the head: new records arrive again, with the loss counted.
    w.publish(filled(100, 99));
    const next = sleeper.poll()!;
    expect(next.data[0]).toBe(99);
    expect(next.lost).toBe(gaps[0]!.to - gaps[0]!.from);
    w.close();
    sleeper.close();
  });

  it("wait(onFull) gives up with FULL after its timeout", () => {
    const name = freshName("waitfull");
    const w = Ring.create(name, { capacity: 1024, onFull: "wait", timeoutMs: 30, stalenessMs: 0 });
    const r = Ring.open(name);
    while (w.publish(filled(100, 0)) !== FULL);
    expect(r.poll()).not.toBeNull();
    w.close();
    r.close();
  });

  it("reattaches a kept slot and resumes at its stored position", () => {
    const name = freshName("keep");
    const w = Ring.create(name, { capacity: 4096 });
    const r1 = Ring.open(name);
    w.publish(bytes(1));
    expect(r1.poll()!.data[0]).toBe(1);
    const slot = r1.slot;
    r1.close({ keepSlot: true });
    w.publish(bytes(2));
    w.publish(bytes(3));
    const r2 = Ring.open(name, { slot });
    expect(r2.pollBatch(10).map((x) => x.data[0])).toEqual([2, 3]);
    w.close();
    r2.close();
  });

  it("wait() times out when idle and returns true once a record is there (with and without spinning)", () => {
    const name = freshName("wait");
    const w = Ring.create(name, { capacity: 4096 });
    const r = Ring.open(name);
    const spinner = Ring.open(name, { spin: 1000 });
    expect(r.wait(20)).toBe(false);
    expect(spinner.wait(5)).toBe(false);
    w.publish(bytes(1));
    expect(r.wait(20)).toBe(true);
    expect(spinner.wait(20)).toBe(true);
    spinner.close();
    w.close();
    r.close();
  });

  it("iterates with for await and ends when the consumer closes", async () => {
    const name = freshName("iter");
    const w = Ring.create(name, { capacity: 4096 });
    const r = Ring.open(name);
    const got: number[] = [];
    const loop = (async () => {
      for await (const rec of r) {
        got.push(rec.data[0]!);
        if (got.length === 3) r.close();
      }
    })();
    setTimeout(() => {
      w.publish(bytes(1));
      w.publishBatch([bytes(2), bytes(3), bytes(4)]);
    }, 20);
    await loop;
    expect(got).toEqual([1, 2, 3]);
    w.close();
  });

  it("detaches zero-copy views on close instead of leaving them pointing at unmapped memory", () => {
    const name = freshName("detach");
    const w = Ring.create(name, { capacity: 4096 });
    const r = Ring.open(name);
    w.publish(filled(10, 7));
    const rec = r.poll()!;
    expect(rec.data.length).toBe(10);
    r.close();
    expect(rec.data.length).toBe(0); // detached ArrayBuffer: reads give undefined, no segfault
    expect(() => r.poll()).toThrow(/closed/);
    w.close();
  });

  it("stat shows head, producer and consumer lag", () => {
    const name = freshName("stat");
    const w = Ring.create(name, { capacity: 4096, maxConsumers: 2 });
    const r = Ring.open(name);
    w.publish(filled(24, 0));
    const s = Ring.stat(name);
    expect(s.head).toBe(recordBytes(24));
    expect(s.producerPid).toBe(process.pid);
    expect(s.consumers).toEqual([expect.objectContaining({ slot: 0, state: "live", lagBytes: recordBytes(24), stale: false })]);
    expect(SLOTS).toBe(256);
    const second = Ring.open(name);
    expectCode(() => Ring.open(name), "RING_NO_SLOT");
    second.close();
    w.close();
    r.close();
  });
});

describe("Ring.open with from", () => {
  it("starts at a known record, at every lap start, refuses bad positions and reports a lapped one once", () => {
    const name = freshName("from");
    const w = Ring.create(name, { capacity: 4096 });
    const offsets: number[] = [];
    for (let i = 0; i < 200; i++) offsets.push(w.publish(filled(40, i & 0xff))); // ~2.7 laps, wraps with padding
    const head = w.position;
    // A record seen earlier: the first poll returns it again.
    const again = Ring.open(name, { from: offsets[190]! });
    expect(again.poll()?.offset).toBe(offsets[190]);
    again.close();
    // The start of the newest lap is a record boundary (records never span the end).
    const lapStart = head - (head % 4096);
    const lap = Ring.open(name, { from: lapStart });
    const got = lap.pollBatch(1000).map((rec) => rec.offset);
    expect(got).toEqual(offsets.filter((o) => o >= lapStart));
    expect(lap.stats.gaps).toBe(0);
    lap.close();
    expectCode(() => Ring.open(name, { from: head + 8 }), "RING_INVALID");
    expectCode(() => Ring.open(name, { from: 3 }), "RING_INVALID");
    // More than a ring behind: one lapped gap, then the consumer is at the head.
    const gaps: RingGap[] = [];
    const old = Ring.open(name, { from: offsets[0]!, onGap: (g) => gaps.push(g) });
    expect(gaps).toEqual([{ from: offsets[0], to: head, reason: "lapped" }]);
    expect(old.poll()).toBeNull();
    expect(old.stats.gaps).toBe(1);
    old.close();
    w.close();
  });
});
