/**
 * A named single-producer, many-consumer ring in shared memory (/dev/shm).
 *
 * Every consumer reads every record (broadcast), each at its own position, like a local topic log.
 * The record path runs in JavaScript over the mapped memory with `Atomics` on the position words;
 * the native addon only maps segments and sleeps/wakes on a futex (see native/shm.c).
 *
 * @example
 * import { Ring } from "@dovetail/local-node";
 * const w = Ring.create("agents", { capacity: 1 << 20, maxConsumers: 8, crc: false });
 * const r = Ring.open("agents");
 * w.publish(new TextEncoder().encode("hello"));
 * const rec = r.poll(); // { offset, type, flags, data, lost } or null
 * w.close(); r.close(); Ring.unlink("agents");
 */
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import { crc32cUpdate } from "./crc32c.ts";
import { RingError, RingErrorCode } from "./errors.ts";
import * as L from "./layout.ts";
import { native } from "./native.ts";

/** Returned by `publish`/`publishBatch` when the slowest live consumer leaves no room. */
export const FULL = -1;

const TWO_POW_32 = 4294967296;
const DEFAULT_CAPACITY_BYTES = 1 << 20;
const DEFAULT_MAX_CONSUMERS = 8;
/** A consumer whose heartbeat is older than this is skipped by a blocked producer. */
const DEFAULT_STALENESS_MS = 5000;
const DEFAULT_FULL_TIMEOUT_MS = 1000;
/** publishBatch stores the head every this many records so consumers can start early. */
const DEFAULT_BATCH_HEAD_EVERY = 16;
/** A busy consumer refreshes its heartbeat every this many calls (Date.now() costs ~40 ns here). */
const HEARTBEAT_EVERY_CALLS = 16;
/** Upper bound of one futex sleep, so waiters re-check staleness and close() promptly. */
const WAIT_SLICE_MS = 250;
/** How long open() waits for a creator that has sized the file but not yet written the magic. */
const INIT_WAIT_MS = 1000;
const STALE_CHECK_INTERVAL_MS = 5;
const FUTEX_WAKE_ALL = 0x7fffffff;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

/** Directory of the segments: /dev/shm, or DOVETAIL_SHM_DIR (any tmpfs) for tests. */
export function shmDir(): string {
  return process.env.DOVETAIL_SHM_DIR ?? "/dev/shm";
}

/** File that backs ring `name`. */
export function ringPath(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new RingError(RingErrorCode.INVALID, `invalid ring name ${JSON.stringify(name)}: use [A-Za-z0-9._-], 1-201 chars`);
  }
  return join(shmDir(), `dovetail-${name}`);
}

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

export interface ConsumerStat {
  slot: number;
  state: "live" | "evicted" | "attaching";
  pid: number;
  alive: boolean;
  tail: number;
  lagBytes: number;
  heartbeatAgeMs: number;
  stale: boolean;
}

export interface RingStat {
  name: string;
  path: string;
  version: number;
  capacity: number;
  maxConsumers: number;
  crc: boolean;
  stalenessMs: number;
  head: number;
  producerPid: number;
  producerAlive: boolean;
  waitingConsumers: number;
  consumers: ConsumerStat[];
}

function badType(type: number): RingError {
  return new RingError(RingErrorCode.INVALID, `record type must be an integer 0..${L.MAX_USER_TYPE} (0xffff is padding), got ${type}`);
}

function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Wall clock in ms, mod 2^32; compared with modular subtraction, so the wrap is harmless. */
function nowMs32(): number {
  return Date.now() % TWO_POW_32 | 0;
}

function hi32(value: number): number {
  return Math.floor(value / TWO_POW_32);
}

interface Header {
  capacity: number;
  maxConsumers: number;
  flags: number;
  dataOffset: number;
  stalenessMs: number;
  maxPayload: number;
}

/** The mapping plus typed views over it. Shared by the producer and consumer handles. */
class Mapping {
  readonly name: string;
  readonly path: string;
  readonly buffer: ArrayBuffer;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly b64: BigInt64Array;
  readonly d32: Int32Array;
  readonly d16: Uint16Array;
  readonly d8: Uint8Array;
  readonly capacity: number;
  readonly mask: number;
  readonly maxConsumers: number;
  readonly crc: boolean;
  readonly dataOffset: number;
  readonly stalenessMs: number;
  readonly maxPayload: number;
  private unmapped = false;

  constructor(name: string, path: string, buffer: ArrayBuffer, header: Header) {
    this.name = name;
    this.path = path;
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer, 0, header.dataOffset >> 2);
    this.u32 = new Uint32Array(buffer, 0, header.dataOffset >> 2);
    this.b64 = new BigInt64Array(buffer, 0, header.dataOffset >> 3);
    this.d32 = new Int32Array(buffer, header.dataOffset, header.capacity >> 2);
    this.d16 = new Uint16Array(buffer, header.dataOffset, header.capacity >> 1);
    this.d8 = new Uint8Array(buffer, header.dataOffset, header.capacity);
    this.capacity = header.capacity;
    this.mask = header.capacity - 1;
    this.maxConsumers = header.maxConsumers;
    this.crc = (header.flags & L.Flag.CRC) !== 0;
    this.dataOffset = header.dataOffset;
    this.stalenessMs = header.stalenessMs;
    this.maxPayload = header.maxPayload;
  }

  readU64(byteOffset: number): number {
    return Number(Atomics.load(this.b64, byteOffset >> 3));
  }

  /**
   * Store a u64 position whose previous stored value was `previous`. While the high word does not
   * change only the low word is stored (a 4-byte atomic store); a reader doing an 8-byte load sees
   * either value whole, because the high word only ever changes in a full 8-byte store.
   */
  storeU64(byteOffset: number, value: number, previous: number): void {
    // SYNC POINT: seq-cst store (xchg on x86-64); every plain write before it (record bytes) is
    // visible to a process that loads this word and sees the new value.
    if (hi32(value) === hi32(previous)) Atomics.store(this.i32, byteOffset >> 2, value | 0);
    else Atomics.store(this.b64, byteOffset >> 3, BigInt(value));
  }

  wake(seqByte: number): number {
    // SYNC POINT: seq-cst add, then FUTEX_WAKE; a waiter that read the old sequence either sees the
    // new one in the kernel's compare (EAGAIN) or is already queued and gets woken.
    Atomics.add(this.i32, seqByte >> 2, 1);
    return native.futexWake(this.buffer, seqByte, FUTEX_WAKE_ALL);
  }

  unmap(): void {
    if (this.unmapped) return;
    this.unmapped = true;
    native.unmap(this.buffer);
  }

  static readHeader(name: string, path: string, buffer: ArrayBuffer): Header {
    if (buffer.byteLength < L.PAGE_BYTES) {
      throw new RingError(RingErrorCode.FOREIGN, `${path} is ${buffer.byteLength} bytes, too small to be a Dovetail ring`);
    }
    const u32 = new Uint32Array(buffer, 0, 16);
    let magic = Atomics.load(u32, L.H_MAGIC >> 2);
    if (magic === 0) {
      // The creator sizes the file before writing the header; wait (bounded) for the magic.
      const sleeper = new Int32Array(new SharedArrayBuffer(4));
      for (let waited = 0; magic === 0 && waited < INIT_WAIT_MS; waited++) {
        Atomics.wait(sleeper, 0, 0, 1);
        magic = Atomics.load(u32, L.H_MAGIC >> 2);
      }
    }
    if (magic !== L.MAGIC) {
      throw new RingError(
        RingErrorCode.FOREIGN,
        `${path} is not a Dovetail ring (magic 0x${magic.toString(16)}, expected 0x${L.MAGIC.toString(16)}); ` +
          `remove it with Ring.unlink(${JSON.stringify(name)}) if it is stale`,
      );
    }
    // SYNC POINT: the magic was stored last (seq-cst) by the creator, so every field below is set.
    const version = u32[L.H_VERSION >> 2]!;
    if (version !== L.VERSION) {
      throw new RingError(
        RingErrorCode.VERSION,
        `${path} has ring layout version ${version}; this library reads version ${L.VERSION}. ` +
          `Upgrade every process on the host to the same @dovetail/local-node, or recreate the ring`,
      );
    }
    const header: Header = {
      capacity: u32[L.H_CAPACITY >> 2]!,
      maxConsumers: u32[L.H_MAX_CONSUMERS >> 2]!,
      flags: u32[L.H_FLAGS >> 2]!,
      dataOffset: u32[L.H_DATA_OFFSET >> 2]!,
      stalenessMs: u32[L.H_STALENESS_MS >> 2]!,
      maxPayload: u32[L.H_MAX_PAYLOAD_BYTES >> 2]!,
    };
    const consistent =
      header.capacity >= L.MIN_CAPACITY_BYTES &&
      header.capacity <= L.MAX_CAPACITY_BYTES &&
      (header.capacity & (header.capacity - 1)) === 0 &&
      header.maxConsumers >= 1 &&
      header.maxConsumers <= L.MAX_CONSUMERS_LIMIT &&
      header.dataOffset === L.dataOffsetFor(header.maxConsumers) &&
      u32[L.H_SLOT_BYTES >> 2] === L.SLOT_BYTES &&
      u32[L.H_RECORD_HEADER_BYTES >> 2] === L.RECORD_HEADER_BYTES &&
      header.dataOffset + header.capacity === buffer.byteLength;
    if (!consistent) {
      throw new RingError(
        RingErrorCode.MISMATCH,
        `${path}: header sizes (capacity ${header.capacity}, consumers ${header.maxConsumers}, data at ${header.dataOffset}) ` +
          `do not match the file (${buffer.byteLength} bytes)`,
      );
    }
    return header;
  }

  /** Map an existing segment; a zero-length file is a creator between open() and ftruncate(): wait (bounded). */
  private static mapExisting(path: string): ArrayBuffer {
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; ; waited++) {
      try {
        return native.map(path, 0);
      } catch (error) {
        if ((error as { code?: string }).code !== "EEMPTY" || waited >= INIT_WAIT_MS) throw error;
        Atomics.wait(sleeper, 0, 0, 1);
      }
    }
  }

  static open(name: string): Mapping {
    const path = ringPath(name);
    let buffer: ArrayBuffer;
    try {
      buffer = Mapping.mapExisting(path);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT") throw new RingError(RingErrorCode.NOT_FOUND, `no ring named ${JSON.stringify(name)} (${path})`, { cause: error });
      if (code === "EEMPTY") throw new RingError(RingErrorCode.FOREIGN, `${path} is empty: not a ring, or its creator died while creating it`, { cause: error });
      throw error;
    }
    try {
      return new Mapping(name, path, buffer, Mapping.readHeader(name, path, buffer));
    } catch (error) {
      native.unmap(buffer);
      throw error;
    }
  }
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
      if (this.head + need > tail + this.capacity && this.mayCheckStale((now ||= Date.now())) && this.isStale(base, now % TWO_POW_32 | 0)) {
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

/**
 * A consumer handle, from `Ring.open`: its own slot and position; reads every record published
 * after it attached (or after its stored position when reattaching with `slot`).
 */
export class RingReader {
  readonly name: string;
  readonly slot: number;
  private readonly m: Mapping;
  private readonly d8: Uint8Array;
  private readonly d16: Uint16Array;
  private readonly d32: Int32Array;
  private readonly buffer: ArrayBuffer;
  private readonly dataOffset: number;
  private readonly capacity: number;
  private readonly mask: number;
  private readonly crc: boolean;
  private readonly maxPayload: number;
  private readonly base: number;
  private readonly stateIndex: number;
  private readonly spin: number;
  private readonly iteratorBatch: number;
  private readonly onGap: ((gap: RingGap) => void) | undefined;
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
    this.d16 = m.d16;
    this.d32 = m.d32;
    this.buffer = m.buffer;
    this.dataOffset = m.dataOffset;
    this.capacity = m.capacity;
    this.mask = m.mask;
    this.crc = m.crc;
    this.maxPayload = m.maxPayload;
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
    const d32 = this.d32;
    const d16 = this.d16;
    const capacity = this.capacity;
    let count = 0;
    while (count < max) {
      if (this.pos === this.head && !this.loadHead()) break;
      const pos = this.pos;
      const index = pos & this.mask;
      const room = capacity - index;
      if (room < L.RECORD_HEADER_BYTES) {
        this.pos = pos + room;
        continue;
      }
      const w = index >> 2;
      const length = d32[w]!;
      const type = d16[(index >> 1) + 2]!;
      const size = (length + 23) & ~7;
      if (d32[w + 2] !== (pos | 0) || length < 0 || length > this.maxPayload || (type !== L.TYPE_PADDING && pos + size > this.head)) {
        this.gap(pos, this.head, "torn");
        this.pos = this.head;
        break;
      }
      if (type === L.TYPE_PADDING) {
        this.pos = pos + room;
        continue;
      }
      if (this.crc && !this.crcOk(index, length, d32[w + 3]!)) {
        this.corrupt(pos, size);
        continue;
      }
      this.pos = pos + size;
      count++;
      handler(this.d8, index + L.RECORD_HEADER_BYTES, length, type, pos);
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

  private next(): RingRecord | null {
    const d32 = this.d32;
    const d16 = this.d16;
    const capacity = this.capacity;
    while (this.pos !== this.head) {
      const pos = this.pos;
      const index = pos & this.mask;
      const room = capacity - index;
      if (room < L.RECORD_HEADER_BYTES) {
        this.pos = pos + room;
        continue;
      }
      const w = index >> 2;
      const length = d32[w]!;
      const type = d16[(index >> 1) + 2]!;
      const size = (length + 23) & ~7;
      if (d32[w + 2] !== (pos | 0) || length < 0 || length > this.maxPayload || (type !== L.TYPE_PADDING && pos + size > this.head)) {
        this.gap(pos, this.head, "torn");
        this.pos = this.head;
        return null;
      }
      if (type === L.TYPE_PADDING) {
        this.pos = pos + room;
        continue;
      }
      if (this.crc && !this.crcOk(index, length, d32[w + 3]!)) {
        this.corrupt(pos, size);
        continue;
      }
      this.pos = pos + size;
      this.stats.records++;
      let lost = 0;
      if (this.lostPending !== 0) {
        lost = this.lostPending;
        this.lostPending = 0;
      }
      return {
        offset: pos,
        type,
        flags: d16[(index >> 1) + 3]!,
        data: new Uint8Array(this.buffer, this.dataOffset + index + L.RECORD_HEADER_BYTES, length),
        lost,
      };
    }
    return null;
  }

  private crcOk(index: number, length: number, stored: number): boolean {
    const c = crc32cUpdate(0, this.d8, index, 12);
    return (crc32cUpdate(c, this.d8, index + L.RECORD_HEADER_BYTES, length) | 0) === stored;
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

/**
 * Take back the doorbell count of consumers that died while asleep (their slot's sleeping flag is
 * still 1 and their pid is gone). Without this the producer would issue a useless FUTEX_WAKE
 * syscall on every head store forever. Run on open, on create/adopt and by a producer whose wakes
 * keep finding nobody.
 */
function healSleepers(m: Mapping): number {
  const i32 = m.i32;
  let healed = 0;
  for (let slot = 0; slot < m.maxConsumers; slot++) {
    const base = L.SLOTS + slot * L.SLOT_BYTES;
    if (Atomics.load(i32, (base + L.S_SLEEPING) >> 2) !== 1) continue;
    if (pidAlive(Atomics.load(i32, (base + L.S_PID) >> 2))) continue;
    if (Atomics.compareExchange(i32, (base + L.S_SLEEPING) >> 2, 1, 0) === 1) {
      Atomics.sub(i32, L.BELL_WAITERS >> 2, 1);
      healed++;
    }
  }
  return healed;
}

/** OpenOptions.from, checked: a non-negative, 8-byte aligned position not past the head. */
function checkFrom(m: Mapping, from: number | undefined): number | undefined {
  if (from === undefined) return undefined;
  const head = m.readU64(L.HEAD);
  if (!Number.isSafeInteger(from) || from < 0 || from % 8 !== 0 || from > head) {
    throw new RingError(RingErrorCode.INVALID, `from must be an 8-byte aligned record position between 0 and the head ${head}, got ${from}`);
  }
  return from;
}

function validateCreate(options: CreateOptions): Required<Pick<CreateOptions, "capacity" | "maxConsumers" | "crc" | "stalenessMs">> {
  const capacity = options.capacity ?? DEFAULT_CAPACITY_BYTES;
  const maxConsumers = options.maxConsumers ?? DEFAULT_MAX_CONSUMERS;
  const stalenessMs = options.stalenessMs ?? DEFAULT_STALENESS_MS;
  if (!Number.isInteger(capacity) || capacity < L.MIN_CAPACITY_BYTES || capacity > L.MAX_CAPACITY_BYTES || (capacity & (capacity - 1)) !== 0) {
    throw new RingError(RingErrorCode.INVALID, `capacity must be a power of two between ${L.MIN_CAPACITY_BYTES} and ${L.MAX_CAPACITY_BYTES}, got ${capacity}`);
  }
  if (!Number.isInteger(maxConsumers) || maxConsumers < 1 || maxConsumers > L.MAX_CONSUMERS_LIMIT) {
    throw new RingError(RingErrorCode.INVALID, `maxConsumers must be 1..${L.MAX_CONSUMERS_LIMIT}, got ${maxConsumers}`);
  }
  if (!Number.isInteger(stalenessMs) || stalenessMs < 0 || stalenessMs >= 2 ** 31) {
    throw new RingError(RingErrorCode.INVALID, `stalenessMs must be a non-negative integer, got ${stalenessMs}`);
  }
  return { capacity, maxConsumers, crc: options.crc ?? false, stalenessMs };
}

/**
 * Entry points. `Ring.create` makes (or adopts) the producer side, `Ring.open` a consumer.
 *
 * @example
 * const w = Ring.create("agents", { capacity: 1 << 20, maxConsumers: 8, crc: false });
 * const r = Ring.open("agents");
 * w.publish(bytes); r.poll();
 * w.close(); r.close(); Ring.unlink("agents");
 */
export class Ring {
  /**
   * Create ring `name` and become its producer. If it already exists and its producer is gone
   * (closed or killed), adopt it and continue at its head; sizes given must match.
   */
  static create(name: string, options: CreateOptions = {}): RingWriter {
    const o = validateCreate(options);
    const path = ringPath(name);
    const dataOffset = L.dataOffsetFor(o.maxConsumers);
    let buffer: ArrayBuffer | undefined;
    try {
      buffer = native.map(path, dataOffset + o.capacity);
    } catch (error) {
      if ((error as { code?: string }).code !== "EEXIST") throw error;
      if (options.exclusive) throw new RingError(RingErrorCode.EXISTS, `ring ${JSON.stringify(name)} exists (${path})`, { cause: error });
    }
    if (buffer !== undefined) {
      const u32 = new Uint32Array(buffer, 0, L.SLOTS >> 2);
      u32[L.H_VERSION >> 2] = L.VERSION;
      u32[L.H_CAPACITY >> 2] = o.capacity;
      u32[L.H_MAX_CONSUMERS >> 2] = o.maxConsumers;
      u32[L.H_FLAGS >> 2] = o.crc ? L.Flag.CRC : 0;
      u32[L.H_DATA_OFFSET >> 2] = dataOffset;
      u32[L.H_SLOT_BYTES >> 2] = L.SLOT_BYTES;
      u32[L.H_STALENESS_MS >> 2] = o.stalenessMs;
      u32[L.H_PRODUCER_PID >> 2] = process.pid;
      u32[L.H_PRODUCER_EPOCH >> 2] = 1;
      u32[L.H_RECORD_HEADER_BYTES >> 2] = L.RECORD_HEADER_BYTES;
      u32[L.H_MAX_PAYLOAD_BYTES >> 2] = (o.capacity >> 1) - L.RECORD_HEADER_BYTES;
      // SYNC POINT: magic last, seq-cst; an opener that sees it sees the whole header.
      Atomics.store(u32, L.H_MAGIC >> 2, L.MAGIC);
      const m = new Mapping(name, path, buffer, Mapping.readHeader(name, path, buffer));
      return new RingWriter(m, options);
    }
    const m = Mapping.open(name);
    try {
      const mismatch =
        (options.capacity !== undefined && options.capacity !== m.capacity) ||
        (options.maxConsumers !== undefined && options.maxConsumers !== m.maxConsumers) ||
        (options.crc !== undefined && options.crc !== m.crc);
      if (mismatch) {
        throw new RingError(
          RingErrorCode.MISMATCH,
          `ring ${JSON.stringify(name)} exists with capacity ${m.capacity}, maxConsumers ${m.maxConsumers}, crc ${m.crc}; ` +
            `options differ (unlink it first to recreate)`,
        );
      }
      const pidIndex = L.H_PRODUCER_PID >> 2;
      const owner = Atomics.load(m.i32, pidIndex);
      if (owner !== 0 && owner !== process.pid && pidAlive(owner)) {
        throw new RingError(RingErrorCode.HAS_PRODUCER, `ring ${JSON.stringify(name)} already has a live producer (pid ${owner})`);
      }
      if (Atomics.compareExchange(m.i32, pidIndex, owner, process.pid) !== owner) {
        throw new RingError(RingErrorCode.HAS_PRODUCER, `another process became the producer of ${JSON.stringify(name)} first`);
      }
      Atomics.add(m.i32, L.H_PRODUCER_EPOCH >> 2, 1);
      // Only a producer waits for space, and there is one: a count left by a dead one is stale.
      Atomics.store(m.i32, L.SPACE_WAITERS >> 2, 0);
      healSleepers(m);
      return new RingWriter(m, options);
    } catch (error) {
      m.unmap();
      throw error;
    }
  }

  /** Attach a consumer with its own slot and position (new records only, or resume `slot`). */
  static open(name: string, options: OpenOptions = {}): RingReader {
    const m = Mapping.open(name);
    try {
      const i32 = m.i32;
      const from = checkFrom(m, options.from);
      healSleepers(m);
      if (options.slot !== undefined) {
        const slot = options.slot;
        if (!Number.isInteger(slot) || slot < 0 || slot >= m.maxConsumers) {
          throw new RingError(RingErrorCode.INVALID, `slot must be 0..${m.maxConsumers - 1}, got ${slot}`);
        }
        const base = L.SLOTS + slot * L.SLOT_BYTES;
        const state = Atomics.load(i32, (base + L.S_STATE) >> 2);
        const pid = Atomics.load(i32, (base + L.S_PID) >> 2);
        if (state !== L.SlotState.FREE && pid !== 0 && pid !== process.pid && pidAlive(pid)) {
          throw new RingError(RingErrorCode.NO_SLOT, `slot ${slot} of ${JSON.stringify(name)} is held by live pid ${pid}`);
        }
        if (Atomics.compareExchange(i32, (base + L.S_STATE) >> 2, state, L.SlotState.ATTACHING) !== state) {
          throw new RingError(RingErrorCode.NO_SLOT, `slot ${slot} of ${JSON.stringify(name)} changed while attaching`);
        }
        const resumeAt = from ?? (state === L.SlotState.FREE ? undefined : m.readU64(base + L.S_TAIL));
        return new RingReader(m, slot, resumeAt, state === L.SlotState.EVICTED, options);
      }
      for (let pass = 0; pass < 2; pass++) {
        for (let slot = 0; slot < m.maxConsumers; slot++) {
          const base = L.SLOTS + slot * L.SLOT_BYTES;
          const state = Atomics.load(i32, (base + L.S_STATE) >> 2);
          // First pass: free slots. Second: slots whose owner process is gone (killed consumers).
          const pid = Atomics.load(i32, (base + L.S_PID) >> 2);
          // A slot kept with close({ keepSlot: true }) has pid 0 and waits for its owner.
          // ATTACHING is never taken: its pid field may still be a previous owner's.
          const takeable =
            pass === 0 ? state === L.SlotState.FREE : (state === L.SlotState.LIVE || state === L.SlotState.EVICTED) && pid !== 0 && !pidAlive(pid);
          if (!takeable) continue;
          if (Atomics.compareExchange(i32, (base + L.S_STATE) >> 2, state, L.SlotState.ATTACHING) === state) {
            return new RingReader(m, slot, from, false, options);
          }
        }
      }
      throw new RingError(RingErrorCode.NO_SLOT, `all ${m.maxConsumers} consumer slots of ${JSON.stringify(name)} are held by live processes`);
    } catch (error) {
      m.unmap();
      throw error;
    }
  }

  /** Remove the segment name (mappings stay valid until closed). Returns false if it did not exist. */
  static unlink(name: string): boolean {
    try {
      unlinkSync(ringPath(name));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw error;
    }
  }

  /** Head, producer and every consumer's position, lag and staleness; does not attach. */
  static stat(name: string): RingStat {
    const m = Mapping.open(name);
    try {
      const i32 = m.i32;
      const head = m.readU64(L.HEAD);
      const now = nowMs32();
      const consumers: ConsumerStat[] = [];
      for (let slot = 0; slot < m.maxConsumers; slot++) {
        const base = L.SLOTS + slot * L.SLOT_BYTES;
        const state = Atomics.load(i32, (base + L.S_STATE) >> 2);
        if (state === L.SlotState.FREE) continue;
        const pid = Atomics.load(i32, (base + L.S_PID) >> 2);
        const tail = m.readU64(base + L.S_TAIL);
        const heartbeatAgeMs = Math.max(0, (now - Atomics.load(i32, (base + L.S_HEARTBEAT_MS) >> 2)) | 0);
        const alive = pidAlive(pid);
        consumers.push({
          slot,
          state: state === L.SlotState.LIVE ? "live" : state === L.SlotState.EVICTED ? "evicted" : "attaching",
          pid,
          alive,
          tail,
          lagBytes: head - tail,
          heartbeatAgeMs,
          stale: !alive || (m.stalenessMs > 0 && heartbeatAgeMs > m.stalenessMs),
        });
      }
      const producerPid = Atomics.load(i32, L.H_PRODUCER_PID >> 2);
      return {
        name,
        path: m.path,
        version: L.VERSION,
        capacity: m.capacity,
        maxConsumers: m.maxConsumers,
        crc: m.crc,
        stalenessMs: m.stalenessMs,
        head,
        producerPid,
        producerAlive: pidAlive(producerPid),
        waitingConsumers: Atomics.load(i32, L.BELL_WAITERS >> 2),
        consumers,
      };
    } finally {
      m.unmap();
    }
  }
}
