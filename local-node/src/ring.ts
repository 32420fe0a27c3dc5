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
import { RingError, RingErrorCode } from "./errors.ts";
import * as L from "./layout.ts";
import { native } from "./native.ts";
import { healSleepers, Mapping, ringPath } from "./ring-mapping.ts";
import { RingReader, type OpenOptions } from "./ring-reader.ts";
import { nowMs32, pidAlive } from "./ring-util.ts";
import { RingWriter, type CreateOptions } from "./ring-writer.ts";

// The ring's public surface, one class per file; this module (the package's "./ring" export) is
// where they are imported from.
export { shmDir, ringPath } from "./ring-mapping.ts";
export { RingReader } from "./ring-reader.ts";
export type { RingRecord, RingGap, OpenOptions } from "./ring-reader.ts";
export { FULL, RingWriter } from "./ring-writer.ts";
export type { CreateOptions } from "./ring-writer.ts";

const DEFAULT_CAPACITY_BYTES = 1 << 20;
const DEFAULT_MAX_CONSUMERS = 8;
/** A consumer whose heartbeat is older than this is skipped by a blocked producer. */
const DEFAULT_STALENESS_MS = 5000;

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
