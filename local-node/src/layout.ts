/**
 * The shared-memory layout, in one place. Every offset is in bytes from the start of the segment.
 * All multi-byte fields are little-endian (the host order on x86-64 and arm64).
 *
 * | bytes              | what                                                        | written by |
 * |--------------------|-------------------------------------------------------------|------------|
 * | 0..63              | header: magic, version, capacity, maxConsumers, flags, ...   | creator    |
 * | 64..71             | head: u64 byte position after the last published record     | producer   |
 * | 128..135           | doorbell: u32 sequence, u32 waiting consumers (futex word)   | both       |
 * | 192..199           | space bell: u32 sequence, u32 waiting producers (futex word) | both       |
 * | 256 + 64*i         | consumer slot i: u64 tail, state, pid, heartbeat, epoch      | consumer i |
 * | dataOffset..+cap   | records (dataOffset is the header rounded up to 4096)        | producer   |
 *
 * Positions are u64 byte counts that only grow. Hot paths read only the low 32 bits (a 4-byte
 * atomic load of the low half of the u64) and rebuild the full value from a position they already
 * know, since head - tail never exceeds the capacity (at most 2^30).
 */

/** "DVTL" read as a little-endian u32. */
export const MAGIC = 0x4c545644;
/** Bump on any layout change; open() refuses other versions with RING_VERSION. */
export const VERSION = 1;

export const CACHE_LINE_BYTES = 64;
export const PAGE_BYTES = 4096;

// Header line (read-mostly).
export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_CAPACITY = 8;
export const H_MAX_CONSUMERS = 12;
export const H_FLAGS = 16;
export const H_DATA_OFFSET = 20;
export const H_SLOT_BYTES = 24;
export const H_STALENESS_MS = 28;
export const H_PRODUCER_PID = 32;
export const H_PRODUCER_EPOCH = 36;
export const H_RECORD_HEADER_BYTES = 40;
export const H_MAX_PAYLOAD_BYTES = 44;

/** Own cache line: the producer stores it, every consumer loads it. */
export const HEAD = 64;
/** Own cache line: futex word consumers sleep on, and their count. */
export const BELL_SEQ = 128;
export const BELL_WAITERS = 132;
/** Own cache line: futex word a producer waiting for space sleeps on, and its count. */
export const SPACE_SEQ = 192;
export const SPACE_WAITERS = 196;
/** Low 32 bits of the tail the waiting producer needs; consumers wake it only once they pass it. */
export const SPACE_TARGET = 200;

export const SLOTS = 256;
export const SLOT_BYTES = CACHE_LINE_BYTES;
// Offsets inside a slot.
export const S_TAIL = 0;
export const S_STATE = 8;
export const S_PID = 12;
export const S_HEARTBEAT_MS = 16;
export const S_EPOCH = 20;
/** 1 while this consumer is counted in BELL_WAITERS; lets others undo the count of a dead sleeper. */
export const S_SLEEPING = 24;

export const SlotState = { FREE: 0, LIVE: 1, EVICTED: 2, ATTACHING: 3 } as const;
export type SlotState = (typeof SlotState)[keyof typeof SlotState];

export const Flag = { CRC: 1 } as const;

/**
 * Record header, 16 bytes, at an 8-byte aligned position:
 * | +0 u32 length (payload bytes) | +4 u16 type | +6 u16 flags | +8 u32 low 32 bits of the record's own position | +12 u32 crc32c |
 * The position stamp lets a reader that was lapped notice it is looking at newer data.
 * The CRC (when the ring has Flag.CRC) covers bytes +0..+11 and the payload.
 */
export const RECORD_HEADER_BYTES = 16;
export const RECORD_ALIGN_BYTES = 8;
/** Record type reserved for the padding record written at wrap-around. User types are 0..0xfffe. */
export const TYPE_PADDING = 0xffff;
export const MAX_USER_TYPE = 0xfffe;

export const MIN_CAPACITY_BYTES = 1024;
export const MAX_CAPACITY_BYTES = 1 << 30;
export const MAX_CONSUMERS_LIMIT = 1024;

export function dataOffsetFor(maxConsumers: number): number {
  const end = SLOTS + maxConsumers * SLOT_BYTES;
  return Math.ceil(end / PAGE_BYTES) * PAGE_BYTES;
}

/** Bytes a record with `payloadBytes` of payload takes in the ring. */
export function recordBytes(payloadBytes: number): number {
  return (payloadBytes + RECORD_HEADER_BYTES + RECORD_ALIGN_BYTES - 1) & ~(RECORD_ALIGN_BYTES - 1);
}
