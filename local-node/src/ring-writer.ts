/**
 * The producer handle (`RingWriter`, from `Ring.create`): the write side of the record path,
 * backpressure against the slowest live consumer, and skipping stale consumers.
 */
import { crc32cUpdate } from "./crc32c.ts";
import { RingError, RingErrorCode } from "./errors.ts";
import * as L from "./layout.ts";
import { native } from "./native.ts";
import { healSleepers, type Mapping } from "./ring-mapping.ts";
import { pidAlive, TWO_POW_32, WAIT_SLICE_MS } from "./ring-util.ts";

/** Returned by `publish`/`publishBatch` when the slowest live consumer leaves no room. */
export const FULL = -1;

const DEFAULT_FULL_TIMEOUT_MS = 1000;
/** publishBatch stores the head every this many records so consumers can start early. */
const DEFAULT_BATCH_HEAD_EVERY = 16;
const STALE_CHECK_INTERVAL_MS = 5;

export interface CreateOptions {
  /** Data bytes, a power of two between 1 KiB and 1 GiB. Default 1 MiB. */
  capacity?: number;
  /** Consumer slots. Default 8. */
  maxConsumers?: number;
  /** CRC32C per record, checked by consumers. Default false. */
  crc?: boolean;
  /** Skip a consumer whose heartbeat is older than this when it blocks the producer; 0 = never. Default 5000. */
  stalenessMs?: number;
  /** When the ring is full: return FULL at once ("fail", default) or wait up to timeoutMs ("wait"). */
  onFull?: "fail" | "wait";
  timeoutMs?: number;
  /** publish() stores the head every N records (call flush() to force). Default 1. */
  publishEvery?: number;
  /** publishBatch() stores the head every N records. Default 16. */
  batchHeadEvery?: number;
  /** Throw RING_EXISTS instead of adopting an existing ring whose producer has died. */
  exclusive?: boolean;
}

function badType(type: number): RingError {
  return new RingError(RingErrorCode.INVALID, `record type must be an integer 0..${L.MAX_USER_TYPE} (0xffff is padding), got ${type}`);
}

/**
 * The producer handle, from `Ring.create`. One per ring; a new producer may adopt a ring whose
 * producer process has died (kill -9 included) and continues at the last published head.
 */
export class RingWriter {
  readonly name: string;
  private readonly m: Mapping;
  private readonly d8: Uint8Array;
  private readonly d16: Uint16Array;
  private readonly d32: Int32Array;
  private readonly capacity: number;
  private readonly mask: number;
  private readonly crc: boolean;
  private readonly maxPayload: number;
  private readonly waitForRoom: boolean;
  private readonly timeoutMs: number;
  private readonly publishEvery: number;
  private readonly batchHeadEvery: number;
  /** Local head: position after the last written record (may be ahead of the published one). */
  private head: number;
  /** Head as last stored in shared memory. */
  private publishedHead: number;
  /** The producer may write while head + bytes <= limit (min live tail + capacity, cached). */
  private limit: number;
  private unpublished = 0;
  private closed = false;
  private nextStaleCheckMs = 0;
  /** FUTEX_WAKEs that woke nobody; every 1024 we look for sleepers that died (healSleepers). */
  private emptyWakes = 0;
  /** Consumers this producer skipped as stale, for stats. */
  evictions = 0;

  /** @internal use Ring.create */
  constructor(m: Mapping, options: CreateOptions) {
    this.name = m.name;
    this.m = m;
    this.d8 = m.d8;
    this.d16 = m.d16;
    this.d32 = m.d32;
    this.capacity = m.capacity;
    this.mask = m.mask;
    this.crc = m.crc;
    this.maxPayload = m.maxPayload;
    this.waitForRoom = options.onFull === "wait";
    this.timeoutMs = options.timeoutMs ?? DEFAULT_FULL_TIMEOUT_MS;
    this.publishEvery = Math.max(1, options.publishEvery ?? 1);
    this.batchHeadEvery = Math.max(1, options.batchHeadEvery ?? DEFAULT_BATCH_HEAD_EVERY);
    this.head = m.readU64(L.HEAD);
    this.publishedHead = this.head;
    this.limit = this.head; // forces a refresh on the first write
  }

  /** Position after the last record written (published or not). */
  get position(): number {
    return this.head;
  }

  get capacityBytes(): number {
    return this.capacity;
  }

  /**
   * Append one record; returns its offset, or FULL. The record is visible to consumers once the head
   * is stored: at once with the default publishEvery 1, else every N records or on flush().
   *
   * @example
   * const offset = w.publish(bytes);          // type 0
   * if (offset === FULL) { ... }               // slowest live consumer is a ring behind
   */
  publish(data: Uint8Array, type = 0): number {
    if (this.closed) throw new RingError(RingErrorCode.CLOSED, "publish on a closed ring");
    const length = data.length;
    if (length > this.maxPayload) {
      throw new RingError(RingErrorCode.TOO_LARGE, `record of ${length} bytes exceeds ${this.maxPayload} for this ring`);
    }
    if (type >>> 0 !== type || type > L.MAX_USER_TYPE) throw badType(type);
    const size = (length + 23) & ~7;
    let index = this.head & this.mask;
    const room = this.capacity - index;
    const need = size > room ? room + size : size;
    if (this.head + need > this.limit && !this.makeRoom(need)) return FULL;
    if (size > room) {
      this.writePadding(index, room);
      this.head += room;
      index = 0;
    }
    const offset = this.head;
    this.writeRecord(index, offset, data, length, type);
    this.head = offset + size;
    if (++this.unpublished >= this.publishEvery) this.flush();
    return offset;
  }

  /**
   * Append records in one go: all of them or none (FULL). The head is stored every batchHeadEvery
   * records and at the end. Returns the offset of the last record (or the head when empty).
   * `type` is one type for all records or one per record.
   *
   * @example
   * const last = w.publishBatch([a, b, c]);
   */
  publishBatch(records: readonly Uint8Array[], type: number | readonly number[] = 0): number {
    if (this.closed) throw new RingError(RingErrorCode.CLOSED, "publishBatch on a closed ring");
    const count = records.length;
    if (count === 0) return this.head;
    const types = typeof type === "number" ? null : type;
    if (types === null) {
      if ((type as number) >>> 0 !== type || (type as number) > L.MAX_USER_TYPE) throw badType(type as number);
    } else {
      if (types.length !== count) throw new RingError(RingErrorCode.INVALID, `${types.length} types for ${count} records`);
      for (const t of types) if (t >>> 0 !== t || t > L.MAX_USER_TYPE) throw badType(t);
    }
    // Exact bytes needed, including padding at wrap-around.
    let h = this.head;
    for (let i = 0; i < count; i++) {
      const length = records[i]!.length;
      if (length > this.maxPayload) {
        throw new RingError(RingErrorCode.TOO_LARGE, `record of ${length} bytes exceeds ${this.maxPayload} for this ring`);
      }
      const size = (length + 23) & ~7;
      const room = this.capacity - (h & this.mask);
      if (size > room) h += room;
      h += size;
    }
    const need = h - this.head;
    if (need > this.capacity) {
      throw new RingError(RingErrorCode.TOO_LARGE, `batch of ${need} bytes exceeds the ring capacity ${this.capacity}; split it`);
    }
    if (this.head + need > this.limit && !this.makeRoom(need)) return FULL;
    let offset = this.head;
    const every = this.batchHeadEvery;
    for (let i = 0; i < count; i++) {
      const data = records[i]!;
      const length = data.length;
      const size = (length + 23) & ~7;
      let index = this.head & this.mask;
      const room = this.capacity - index;
      if (size > room) {
        this.writePadding(index, room);
        this.head += room;
        index = 0;
      }
      offset = this.head;
      this.writeRecord(index, offset, data, length, types === null ? (type as number) : types[i]!);
      this.head = offset + size;
      if ((i + 1) % every === 0) this.storeHead();
    }
    this.flush();
    return offset;
  }

  /** Store the head now and ring the doorbell if a consumer sleeps. */
  flush(): void {
    this.unpublished = 0;
    if (this.head === this.publishedHead) return;
    this.storeHead();
  }

  private storeHead(): void {
    const m = this.m;
    m.storeU64(L.HEAD, this.head, this.publishedHead);
    this.publishedHead = this.head;
    // SYNC POINT: the seq-cst head store above, then a seq-cst load of the waiter count. A consumer
    // increments the count (seq-cst) before re-reading the head, so one of us sees the other.
    if (Atomics.load(m.i32, L.BELL_WAITERS >> 2) !== 0 && m.wake(L.BELL_SEQ) === 0 && (++this.emptyWakes & 1023) === 0) {
      healSleepers(m);
    }
  }

  private writePadding(index: number, room: number): void {
    // Fewer than 16 bytes left before the end: implicit padding (readers apply the same rule).
    if (room < L.RECORD_HEADER_BYTES) return;
    const w = index >> 2;
    this.d32[w] = room - L.RECORD_HEADER_BYTES;
    this.d16[(index >> 1) + 2] = L.TYPE_PADDING;
    this.d16[(index >> 1) + 3] = 0;
    this.d32[w + 2] = this.head | 0;
    this.d32[w + 3] = 0;
  }

  private writeRecord(index: number, offset: number, data: Uint8Array, length: number, type: number): void {
    const w = index >> 2;
    const d32 = this.d32;
    d32[w] = length;
    this.d16[(index >> 1) + 2] = type;
    this.d16[(index >> 1) + 3] = this.crc ? L.Flag.CRC : 0;
    d32[w + 2] = offset | 0;
    this.d8.set(data, index + L.RECORD_HEADER_BYTES);
    if (this.crc) {
      const c = crc32cUpdate(0, this.d8, index, 12);
      d32[w + 3] = crc32cUpdate(c, this.d8, index + L.RECORD_HEADER_BYTES, length);
    } else {
      d32[w + 3] = 0;
    }
  }

  /** Recompute the limit from the consumers; skip stale or dead ones; wait if configured. */
  private makeRoom(need: number): boolean {
    this.refreshLimit(need);
    if (this.head + need <= this.limit) return true;
    if (!this.waitForRoom) return false;
    const m = this.m;
    const i32 = m.i32;
    this.flush(); // consumers cannot free space for records they cannot see
    // Hysteresis: once blocked, wait for an eighth of the ring (or `need`), so that producer and
    // consumer do not ping-pong a wake-up per record when the ring stays full.
    const want = Math.min(this.capacity, Math.max(need, this.capacity >> 3));
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      Atomics.store(i32, L.SPACE_TARGET >> 2, (this.head + want - this.capacity) | 0);
      // SYNC POINT: seq-cst increment of the waiting count, then tail loads (refreshLimit); pairs
      // with a consumer's tail store then count load in RingReader.commitTo (Dekker).
      Atomics.add(i32, L.SPACE_WAITERS >> 2, 1);
      const seq = Atomics.load(i32, L.SPACE_SEQ >> 2);
      this.refreshLimit(want);
      const remaining = deadline - Date.now();
      if (this.head + want <= this.limit || (remaining <= 0 && this.head + need <= this.limit)) {
        Atomics.sub(i32, L.SPACE_WAITERS >> 2, 1);
        return true;
      }
      if (remaining <= 0) {
        Atomics.sub(i32, L.SPACE_WAITERS >> 2, 1);
        return false;
      }
      native.futexWait(m.buffer, L.SPACE_SEQ, seq, Math.min(remaining, WAIT_SLICE_MS, Math.max(1, m.stalenessMs >> 2)));
      Atomics.sub(i32, L.SPACE_WAITERS >> 2, 1);
    }
  }

  private refreshLimit(need: number): void {
    const m = this.m;
    const i32 = m.i32;
    const published = this.publishedHead;
    // Never trust space beyond published head + capacity: a consumer attaching now starts at a head
    // it reads after announcing itself, which is >= the published head we saw (see RingReader.attach).
    let min = published;
    let now = 0;
    for (let slot = 0; slot < m.maxConsumers; slot++) {
      const base = L.SLOTS + slot * L.SLOT_BYTES;
      if (Atomics.load(i32, (base + L.S_STATE) >> 2) !== L.SlotState.LIVE) continue;
      let lag = ((published | 0) - Atomics.load(i32, (base + L.S_TAIL) >> 2)) >>> 0;
      if (lag > this.capacity) lag = 0; // tail at or past the head (can only be transient)
      const tail = published - lag;
      if (this.head + need > tail + this.capacity && this.mayCheckStale((now ||= Date.now())) && this.isStale(base, (now % TWO_POW_32) | 0)) {
        // SYNC POINT: seq-cst CAS LIVE -> EVICTED before we write over the consumer's records; the
        // consumer loads its state after reading, so it either sees EVICTED or read intact data.
        if (Atomics.compareExchange(i32, (base + L.S_STATE) >> 2, L.SlotState.LIVE, L.SlotState.EVICTED) === L.SlotState.LIVE) {
          this.evictions++;
          continue;
        }
      }
      if (tail < min) min = tail;
    }
    this.limit = min + this.capacity;
  }

  /**
   * Staleness checks cost a kill(pid, 0) syscall per blocking consumer; a producer spinning on FULL
   * would make one per attempt and slow the very consumer it waits for. At most one round per
   * STALE_CHECK_INTERVAL_MS.
   */
  private mayCheckStale(now: number): boolean {
    if (now < this.nextStaleCheckMs) return false;
    this.nextStaleCheckMs = now + STALE_CHECK_INTERVAL_MS;
    return true;
  }

  private isStale(base: number, now: number): boolean {
    const m = this.m;
    if (!pidAlive(m.u32[(base + L.S_PID) >> 2]!)) return true;
    if (m.stalenessMs === 0) return false;
    // Signed difference: the consumer may beat after we read the clock (a negative age is fresh).
    const age = (now - Atomics.load(m.i32, (base + L.S_HEARTBEAT_MS) >> 2)) | 0;
    return age > m.stalenessMs;
  }

  /** Publish what is pending, give up the producer role, unmap. Records stay for consumers. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    Atomics.compareExchange(this.m.i32, L.H_PRODUCER_PID >> 2, process.pid, 0);
    this.m.wake(L.BELL_SEQ);
    this.m.unmap();
  }
}
