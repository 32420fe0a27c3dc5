/**
 * The consumer's check of one record header, the same for `poll`, `pollBatch`, `drain` and the
 * async iterator (all reach it through `RingReader.seek`). Layout of the header: src/layout.ts.
 *
 * This runs once per record on the hot path (a few ns per record with `drain`), so it stays small
 * enough for TurboFan to inline into the reader's loops, allocates nothing, returns a small integer
 * and writes what it read into a `RecordHeader` each reader allocates once.
 */
import { crc32cUpdate } from "./crc32c.ts";
import * as L from "./layout.ts";
import type { Mapping } from "./ring-mapping.ts";

/** Why `checkRecord` found no record to deliver at a position (`RecordHeader.skip`). */
export const RecordSkip = {
  /** Padding (a record of type 0xffff, or fewer than 16 bytes left before the end): advance `size` bytes, to the next lap. */
  PADDING: 1,
  /** CRC32C mismatch (rings with `crc: true`): advance `size` bytes past the record, report a `corrupt` gap. */
  CORRUPT: 2,
  /** Inconsistent header (position stamp, length): nothing in it can be trusted; resync to the head. */
  TORN: 3,
} as const;
export type RecordSkip = (typeof RecordSkip)[keyof typeof RecordSkip];

/**
 * The header fields `checkRecord` read, filled in place: one per reader, reused for every record
 * (never an object per record). Every field stays a small integer, so the object keeps one shape.
 */
export class RecordHeader {
  /** User type 0..0xfffe of the record to deliver. */
  type = 0;
  /** Bytes from this position to the next record's: the record's size, alignment included, or the padding. */
  size = 0;
  /** When checkRecord returned -1: why (a RecordSkip). `size` is set for PADDING and CORRUPT. */
  skip: RecordSkip = RecordSkip.TORN;
}

/**
 * Check the record at `pos` (data index `index` = `pos & m.mask`), given the head as last loaded.
 * Returns its payload length (>= 0) when it is a record to deliver, with `out.type` and `out.size`
 * set; or -1 when there is none here, with the reason in `out.skip`.
 *
 * The header is read once: use the returned length, never a re-read of shared memory, to build
 * views (the producer may be writing over the record if this consumer was skipped as stale).
 * Hot path notes (measured with an in-process A/B of drain, ~8 ns/record): the result is a plain
 * integer with the literal -1 as its only other value, so that once inlined it stays an untagged
 * word; a code loaded from an imported constant made it a tagged value and cost ~1.5 ns/record.
 *
 * @example
 * const length = checkRecord(m, header, pos & m.mask, pos, head);
 * if (length >= 0) deliver(index + L.RECORD_HEADER_BYTES, length, header.type); // then pos += header.size
 */
export function checkRecord(m: Mapping, out: RecordHeader, index: number, pos: number, head: number): number {
  const room = m.capacity - index;
  if (room < L.RECORD_HEADER_BYTES) {
    // Fewer than 16 bytes left before the end: implicit padding (the producer applies the same rule).
    out.skip = RecordSkip.PADDING;
    out.size = room;
    return -1;
  }
  const d32 = m.d32;
  const w = index >> 2;
  const length = d32[w]!;
  const type = m.d16[(index >> 1) + 2]!;
  const size = (length + 23) & ~7;
  if (d32[w + 2] !== (pos | 0) || length < 0 || length > m.maxPayload || (type !== L.TYPE_PADDING && pos + size > head)) {
    out.skip = RecordSkip.TORN;
    return -1;
  }
  if (type === L.TYPE_PADDING) {
    out.skip = RecordSkip.PADDING;
    out.size = room;
    return -1;
  }
  out.size = size;
  if (m.crc && !crcOk(m.d8, index, length, d32[w + 3]!)) {
    out.skip = RecordSkip.CORRUPT;
    return -1;
  }
  out.type = type;
  return length;
}

/** CRC32C over header bytes +0..+11 and the payload, against the stored value (kept out of line). */
function crcOk(d8: Uint8Array, index: number, length: number, stored: number): boolean {
  const c = crc32cUpdate(0, d8, index, 12);
  return (crc32cUpdate(c, d8, index + L.RECORD_HEADER_BYTES, length) | 0) === stored;
}
