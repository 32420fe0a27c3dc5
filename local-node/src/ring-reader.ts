/**
 * A consumer handle (`RingReader`, from `Ring.open`): the read side of the record path (`poll`,
 * `pollBatch`, `drain`, the async iterator), waiting on the doorbell, heartbeats and recovery
 * after being skipped as stale.
 */
import { RingError, RingErrorCode } from "./errors.ts";
import * as L from "./layout.ts";
import { native } from "./native.ts";
import type { Mapping } from "./ring-mapping.ts";
import { RecordCheck, RecordHeader } from "./ring-record.ts";
import { nowMs32, TWO_POW_32, WAIT_SLICE_MS } from "./ring-util.ts";

/** A busy consumer refreshes its heartbeat every this many calls (Date.now() costs ~40 ns here). */
const HEARTBEAT_EVERY_CALLS = 16;

/** One record handed to a consumer. */
export interface RingRecord {
  /** Byte position of the record in the ring's log; grows forever, unique per ring. */
  offset: number;
  /** User type, 0..0xfffe. */
  type: number;
  flags: number;
  /**
   * Zero-copy view into shared memory. Valid until the next poll/pollBatch/drain/iteration step or
   * close() on the same consumer; copy it (`data.slice()`) to keep it longer.
   */
  data: Uint8Array;
  /** Bytes of log this consumer lost just before this record (0 normally); see RingGap. */
  lost: number;
}

/** Records a consumer did not get, and why. */
export interface RingGap {
  from: number;
  to: number;
  /**
   * evicted: the consumer was skipped as stale and the producer wrote over its records.
   * lapped: its position was more than a ring behind the head (it was asleep or reattached late).
   * corrupt: a record failed its CRC32C; only that record is skipped.
   * torn: a record header is inconsistent (position stamp, length); the consumer resyncs to the head.
   */
  reason: "evicted" | "lapped" | "corrupt" | "torn";
}

export interface OpenOptions {
  /** Reattach to this consumer slot and resume at its stored position (gap reported if lost). */
  slot?: number;
  /**
   * Start at this position instead of the head (or the slot's stored position): a record boundary
   * the caller knows, such as a record's `offset` seen earlier or a multiple of the capacity (the
   * ring never splits a record across its end, so every lap starts on a record). Must be <= the
   * head; a position more than a ring behind the head is reported as a `lapped` gap and the
   * consumer starts at the head.
   *
   * @example
   * const r = Ring.open("agents", { from: lastSeen.offset }); // the first poll returns that record again
   */
  from?: number;
  /** Checks of the head before sleeping on the futex, for latency-critical consumers. Default 0. */
  spin?: number;
  /** Called for every gap; the next record also carries `lost`. */
  onGap?: (gap: RingGap) => void;
  /** Records fetched per step by the async iterator. Default 256. */
  iteratorBatch?: number;
}

/**
 * A consumer handle, from `Ring.open`: its own slot and position; reads every record published
 * after it attached (or after its stored position when reattaching with `slot`).
 */
export class RingReader {
  readonly name: string;
  readonly slot: number;
  private readonly m: Mapping;
  private readonly d8: Uint8Array;
  private readonly buffer: ArrayBuffer;
  private readonly dataOffset: number;
  private readonly capacity: number;
  private readonly mask: number;
  private readonly base: number;
  private readonly stateIndex: number;
  private readonly spin: number;
  private readonly iteratorBatch: number;
  private readonly onGap: ((gap: RingGap) => void) | undefined;
  /** Fields of the record header RecordHeader.check read last; reused for every record (no allocation per record). */
  private readonly found = new RecordHeader();
  /** Next position to read. */
  private pos: number;
  /** Head as last loaded (full value). */
  private head: number;
  /** Tail as last stored in the slot. */
  private tail: number;
  private calls = 0;
  private lostPending = 0;
  private closed = false;
  private pendingWaits = 0;
  private unmapWhenIdle = false;
  /** Counters: bytes lost, number of gaps, records failing CRC, records delivered. */
  readonly stats = { lostBytes: 0, gaps: 0, corrupt: 0, records: 0 };

  /** @internal use Ring.open */
  constructor(m: Mapping, slot: number, resumeAt: number | undefined, wasEvicted: boolean, options: OpenOptions) {
    this.name = m.name;
    this.slot = slot;
    this.m = m;
    this.d8 = m.d8;
    this.buffer = m.buffer;
    this.dataOffset = m.dataOffset;
    this.capacity = m.capacity;
    this.mask = m.mask;
    this.base = L.SLOTS + slot * L.SLOT_BYTES;
    this.stateIndex = (this.base + L.S_STATE) >> 2;
    this.spin = options.spin ?? 0;
    this.iteratorBatch = options.iteratorBatch ?? 256;
    this.onGap = options.onGap;
    const i32 = m.i32;
    const head = m.readU64(L.HEAD);
    // Attach protocol: tail first, then LIVE, then re-read the head and start there. The producer
    // bounds its writes by the head it had published when it last scanned the slots, which is <=
    // the head we read after going LIVE, so the records from our start are never overwritten.
    const start = resumeAt ?? head;
    this.tail = start;
    m.storeU64(this.base + L.S_TAIL, start, start + TWO_POW_32); // full 8-byte store
    Atomics.store(i32, (this.base + L.S_PID) >> 2, process.pid);
    Atomics.store(i32, (this.base + L.S_HEARTBEAT_MS) >> 2, nowMs32());
    Atomics.add(i32, (this.base + L.S_EPOCH) >> 2, 1);
    if (Atomics.compareExchange(i32, (this.base + L.S_SLEEPING) >> 2, 1, 0) === 1) Atomics.sub(i32, L.BELL_WAITERS >> 2, 1);
    // SYNC POINT: seq-cst store of LIVE; the producer's next slot scan includes our tail.
    Atomics.store(i32, this.stateIndex, L.SlotState.LIVE);
    const after = m.readU64(L.HEAD);
    this.head = after;
    if (resumeAt === undefined) {
      this.pos = after;
      this.commitTo(after);
    } else {
      this.pos = resumeAt;
      if (wasEvicted) this.gap(resumeAt, after, "evicted");
      else if (after - resumeAt > this.capacity) {
        // Its records were overwritten: report them once and start at the head (not at a
        // position whose bytes now belong to later records, which would report a second gap).
        this.gap(resumeAt, after, "lapped");
        this.pos = after;
        this.commitTo(after);
      }
    }
  }

  /** Next position this consumer will read. */
  get position(): number {
    return this.pos;
  }

  /**
   * One record, or null when caught up. Also releases the record returned by the previous call.
   *
   * @example
   * for (let rec = r.poll(); rec !== null; rec = r.poll()) handle(rec.data);
   */
  poll(): RingRecord | null {
    this.release();
    if (this.pos === this.head && !this.loadHead()) return null;
    const start = this.pos;
    const record = this.next();
    // SYNC POINT: seq-cst load of our state after reading; see RingWriter.refreshLimit.
    if (Atomics.load(this.m.i32, this.stateIndex) !== L.SlotState.LIVE) {
      this.recoverEviction(start);
      return null;
    }
    return record;
  }

  /**
   * Up to `max` records (an empty array when caught up). Releases the previous call's records.
   *
   * @example
   * const batch = r.pollBatch(64);
   */
  pollBatch(max = 256): RingRecord[] {
    this.release();
    const out: RingRecord[] = [];
    if (this.pos === this.head && !this.loadHead()) return out;
    const start = this.pos;
    while (out.length < max) {
      const record = this.next();
      if (record === null) {
        if (this.pos !== this.head || !this.loadHead()) break;
        continue;
      }
      out.push(record);
    }
    if (Atomics.load(this.m.i32, this.stateIndex) !== L.SlotState.LIVE) {
      this.recoverEviction(start);
      return [];
    }
    return out;
  }

  /**
   * Allocation-free fast path: calls `handler(bytes, start, length, type, offset)` for up to `max`
   * records, where `bytes` is the whole data region and the payload is `bytes[start, start+length)`.
   * The bytes are valid only inside the handler: drain releases its records before returning.
   * Returns the number of records, or -1 if the consumer turned out to be evicted during the call,
   * in which case whatever the handler saw in this call must be discarded (it may be overwritten).
   *
   * @example
   * r.drain((bytes, start, length) => { sum += bytes[start]; }, 1024);
   */
  drain(handler: (bytes: Uint8Array, start: number, length: number, type: number, offset: number) => void, max = 1024): number {
    this.release();
    if (this.pos === this.head && !this.loadHead()) return 0;
    const start = this.pos;
    const found = this.found;
    let count = 0;
    while (count < max) {
      if (this.pos === this.head && !this.loadHead()) break;
      const pos = this.pos;
      const index = pos & this.mask;
      const length = found.check(this.m, index, pos, this.head);
      if (length < 0) {
        this.skip(pos, length);
        if (length === RecordCheck.TORN) break; // resynced to the head: stop this call there
        continue;
      }
      this.pos = pos + found.size;
      count++;
      handler(this.d8, index + L.RECORD_HEADER_BYTES, length, found.type, pos);
    }
    this.stats.records += count;
    if (Atomics.load(this.m.i32, this.stateIndex) !== L.SlotState.LIVE) {
      this.recoverEviction(start);
      return -1;
    }
    // The handler saw the records inside this call only, so release them now, not on the next call.
    if (count !== 0) this.commitTo(this.pos);
    return count;
  }

  /** True when a record is ready to poll (loads the head). */
  available(): boolean {
    return this.pos !== this.head || this.loadHead();
  }

  /**
   * Block this thread until a record is ready or `timeoutMs` passes (spinning `spin` checks first).
   * Uses ~0% CPU while asleep; the producer only issues FUTEX_WAKE when someone sleeps.
   * Returns whether a record is ready.
   */
  wait(timeoutMs: number): boolean {
    for (let i = 0; i <= this.spin; i++) if (this.available()) return true;
    const i32 = this.m.i32;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.beat();
      // SYNC POINT: seq-cst increment of the waiter count, then re-load the head (in available());
      // pairs with the producer's head store then waiter-count load (Dekker), so no lost wake-up.
      this.sleepBegin();
      const seq = Atomics.load(i32, L.BELL_SEQ >> 2);
      if (this.closed || this.available()) {
        this.sleepEnd();
        return !this.closed;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.sleepEnd();
        return false;
      }
      native.futexWait(this.buffer, L.BELL_SEQ, seq, Math.min(remaining, this.sliceMs()));
      this.sleepEnd();
      if (this.available()) return true;
    }
  }

  /** `wait` without blocking the event loop (the futex sleep runs on a libuv pool thread). */
  async waitAsync(timeoutMs: number): Promise<boolean> {
    for (let i = 0; i <= this.spin; i++) if (this.available()) return true;
    const i32 = this.m.i32;
    const deadline = Date.now() + timeoutMs;
    this.pendingWaits++;
    try {
      for (;;) {
        if (this.closed) return false;
        this.beat();
        this.sleepBegin();
        const seq = Atomics.load(i32, L.BELL_SEQ >> 2);
        if (this.available()) {
          this.sleepEnd();
          return true;
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          this.sleepEnd();
          return false;
        }
        await native.futexWaitAsync(this.buffer, L.BELL_SEQ, seq, Math.min(remaining, this.sliceMs()));
        if (this.closed) return false; // unmapped, or about to be: touch nothing
        this.sleepEnd();
        if (this.available()) return true;
      }
    } finally {
      this.pendingWaits--;
      if (this.unmapWhenIdle && this.pendingWaits === 0) this.m.unmap();
    }
  }

  /**
   * Records forever (until close()), waiting on the futex without blocking the event loop.
   * Each record's `data` is valid until the loop asks for the next one.
   *
   * @example
   * for await (const rec of r) console.log(rec.offset, rec.data.length);
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<RingRecord, void, undefined> {
    while (!this.closed) {
      const batch = this.pollBatch(this.iteratorBatch);
      if (batch.length > 0) {
        for (const record of batch) {
          yield record;
          if (this.closed) return;
        }
        continue;
      }
      await this.waitAsync(WAIT_SLICE_MS);
    }
  }

  /** Free the slot (unless `keepSlot`, for a later `Ring.open(name, { slot })`) and unmap. */
  close(options: { keepSlot?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    const i32 = this.m.i32;
    this.sleepEnd(); // a pending waitAsync will not touch the mapping again
    this.commitTo(this.pos);
    if (!options.keepSlot) Atomics.store(i32, this.stateIndex, L.SlotState.FREE);
    else Atomics.store(i32, (this.base + L.S_PID) >> 2, 0);
    // Free space may unblock a waiting producer; sleeping iterators must notice the close.
    this.m.wake(L.SPACE_SEQ);
    this.m.wake(L.BELL_SEQ);
    if (this.pendingWaits === 0) this.m.unmap();
    else this.unmapWhenIdle = true;
  }

  /**
   * Count this consumer as asleep: the global count first, then the slot flag. A process killed in
   * between leaves the count one too high (the producer makes a wasted FUTEX_WAKE), never too low
   * (a lost wake-up); a killed sleeper's flag lets healSleepers() take its count back.
   */
  private sleepBegin(): void {
    const i32 = this.m.i32;
    // SYNC POINT: seq-cst increment before the head re-load in the caller (Dekker with the producer).
    Atomics.add(i32, L.BELL_WAITERS >> 2, 1);
    Atomics.store(i32, (this.base + L.S_SLEEPING) >> 2, 1);
  }

  private sleepEnd(): void {
    const i32 = this.m.i32;
    if (Atomics.compareExchange(i32, (this.base + L.S_SLEEPING) >> 2, 1, 0) === 1) Atomics.sub(i32, L.BELL_WAITERS >> 2, 1);
  }

  private sliceMs(): number {
    return Math.min(WAIT_SLICE_MS, Math.max(1, this.m.stalenessMs >> 2));
  }

  /** Hand back the records returned by the previous call: store tail = pos. */
  private release(): void {
    if (this.closed) throw new RingError(RingErrorCode.CLOSED, "poll on a closed ring");
    if (this.pos !== this.tail) this.commitTo(this.pos);
    if (++this.calls === HEARTBEAT_EVERY_CALLS) this.beat();
  }

  private commitTo(pos: number): void {
    const m = this.m;
    m.storeU64(this.base + L.S_TAIL, pos, this.tail);
    this.tail = pos;
    // SYNC POINT: seq-cst tail store, then load of the producer-waiting count (pairs with
    // RingWriter.makeRoom: target store, count increment, then tail loads). Wake only once our
    // tail passes the producer's target: no syscall per record while the ring stays full.
    if (Atomics.load(m.i32, L.SPACE_WAITERS >> 2) !== 0 && (((pos | 0) - Atomics.load(m.i32, L.SPACE_TARGET >> 2)) | 0) >= 0) {
      m.wake(L.SPACE_SEQ);
    }
  }

  private beat(): void {
    this.calls = 0;
    Atomics.store(this.m.i32, (this.base + L.S_HEARTBEAT_MS) >> 2, nowMs32());
  }

  /** Load the head; true if there is something past pos. Handles being lapped. */
  private loadHead(): boolean {
    // SYNC POINT: seq-cst load of the low head word; pairs with the producer's head store, so the
    // record bytes before the head are visible.
    const lo = Atomics.load(this.m.i32, L.HEAD >> 2);
    const ahead = (lo - (this.pos | 0)) >>> 0;
    if (ahead <= this.capacity) {
      this.head = this.pos + ahead;
      return ahead !== 0;
    }
    if (Atomics.load(this.m.i32, this.stateIndex) !== L.SlotState.LIVE) {
      // More than a ring behind because the producer skipped us as stale.
      this.recoverEviction(this.pos);
      return false;
    }
    const head = this.m.readU64(L.HEAD);
    if (head - this.pos > this.capacity || head < this.pos) {
      // Lapped (we slept through more than a ring), or the ring was reset under us.
      this.gap(this.pos, head, "lapped");
      this.pos = head;
    }
    this.head = head;
    return head !== this.pos;
  }

  /**
   * RecordHeader.check found no record to deliver at `pos` (`code` < 0): move past padding; report
   * a corrupt record and move past it; report a torn header and resync to the head. Kept out of the
   * per-record code that TurboFan inlines into poll, pollBatch and drain, so that it stays small
   * (see RecordHeader.check).
   */
  private skip(pos: number, code: number): void {
    if (code === RecordCheck.TORN) {
      this.gap(pos, this.head, "torn");
      this.pos = this.head;
    } else if (code === RecordCheck.CORRUPT) {
      this.corrupt(pos, this.found.size);
    } else {
      this.pos = pos + this.found.size; // padding: to the start of the next lap
    }
  }

  private next(): RingRecord | null {
    const found = this.found;
    const m = this.m;
    while (this.pos !== this.head) {
      const pos = this.pos;
      const index = pos & this.mask;
      const length = found.check(m, index, pos, this.head);
      if (length < 0) {
        this.skip(pos, length);
        if (length === RecordCheck.TORN) return null;
        continue;
      }
      this.pos = pos + found.size;
      this.stats.records++;
      let lost = 0;
      if (this.lostPending !== 0) {
        lost = this.lostPending;
        this.lostPending = 0;
      }
      return {
        offset: pos,
        type: found.type,
        flags: m.d16[(index >> 1) + 3]!, // m.d16 as in check: one map check of the view, not two
        data: new Uint8Array(this.buffer, this.dataOffset + index + L.RECORD_HEADER_BYTES, length),
        lost,
      };
    }
    return null;
  }

  private corrupt(pos: number, size: number): void {
    this.stats.corrupt++;
    this.gap(pos, pos + size, "corrupt");
    this.pos = pos + size;
  }

  private gap(from: number, to: number, reason: RingGap["reason"]): void {
    if (to <= from) return;
    this.stats.gaps++;
    this.stats.lostBytes += to - from;
    this.lostPending += to - from;
    this.onGap?.({ from, to, reason });
  }

  /** The producer skipped us: rejoin at the current head (attach protocol) and report the gap. */
  private recoverEviction(from: number): void {
    const m = this.m;
    const i32 = m.i32;
    const head = m.readU64(L.HEAD);
    this.commitTo(head);
    Atomics.store(i32, this.stateIndex, L.SlotState.LIVE);
    const after = m.readU64(L.HEAD);
    this.commitTo(after);
    this.gap(from, after, "evicted");
    this.pos = after;
    this.head = after;
    this.beat();
  }
}
