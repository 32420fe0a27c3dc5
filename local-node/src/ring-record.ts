/**
 * The consumer's check of one record header (`RecordHeader.check`): the one check behind `poll`,
 * `pollBatch`, `drain` and the async iterator (RingReader calls it from `next`, which serves poll,
 * pollBatch and the iterator, and from `drain`). Layout of the header: src/layout.ts.
 *
 * It runs once per record on the hot path (`drain` costs ~8 ns per record in one process), so it is
 * small enough for TurboFan to inline into the reader's loops, allocates nothing, returns a plain
 * integer and writes what it read into the `RecordHeader` each reader allocates once.
 */
import { crc32cUpdate } from "./crc32c.ts";
import * as L from "./layout.ts";
import type { Mapping } from "./ring-mapping.ts";

/**
 * What `RecordHeader.check` returns when there is no record to deliver at a position; a record to
 * deliver gives its payload length (>= 0) instead.
 */
export const RecordCheck = {
  /** Padding (a record of type 0xffff, or fewer than 16 bytes left before the end): advance `size` bytes, to the next lap. */
  PADDING: -1,
  /** CRC32C mismatch (rings with `crc: true`): advance `size` bytes past the record, report a `corrupt` gap. */
  CORRUPT: -2,
  /** Inconsistent header (position stamp, length): nothing in it can be trusted; resync to the head. */
  TORN: -3,
} as const;

/**
 * The fields of the record header last checked, filled in place by `check`: one per reader, reused
 * for every record (never an object per record). Both fields stay small integers, so the object
 * keeps one shape.
 */
export class RecordHeader {
  /** User type 0..0xfffe of the record to deliver. */
  type = 0;
  /** Bytes from the checked position to the next record's: the record, alignment included, or the padding (not set for TORN). */
  size = 0;

  /**
   * Check the record at `pos` (data index `index` = `pos & m.mask`), given the head as last loaded.
   * Returns its payload length (>= 0) when it is a record to deliver, with `type` and `size` set;
   * otherwise a negative `RecordCheck` code.
   *
   * The header is read once: build views from the returned length, never from a second read of
   * shared memory (the producer may be writing over the record if this consumer was skipped as stale).
   *
   * Shaped for the hot path, measured with an in-process A/B (Node 24, one process, consumer time
   * only) of `drain`, `pollBatch` and `poll` against the check written out in each reader loop,
   * as it was before this method: ~7.8 ns per record with `drain` then, ~9.3 ns now (the fields
   * written here are re-read after the inlined returns merge). What made it slower first:
   * - codes returned as named constants: a value loaded from an imported constant makes the
   *   inlined result a tagged value (+1.3 ns); hence the literals, named in `RecordCheck`;
   * - an imported function: each call loads and compares its binding; a method's call site only
   *   checks the receiver's map, which the stores below need anyway;
   * - bytecode size: TurboFan inlines at most 920 bytes of bytecode into one function; with a
   *   helper layer between the reader and this method, `poll` no longer inlined the tail store
   *   (`commitTo`) and paid a call per record (+3 to +6 ns). The cold cases are acted on in
   *   `RingReader.skip`, out of line, for the same reason.
   *
   * @example
   * const length = header.check(m, pos & m.mask, pos, head);
   * if (length >= 0) deliver(index + L.RECORD_HEADER_BYTES, length, header.type); // next record at pos + header.size
   */
  check(m: Mapping, index: number, pos: number, head: number): number {
    const room = m.capacity - index;
    if (room < L.RECORD_HEADER_BYTES) {
      // Fewer than 16 bytes left before the end: implicit padding (the producer applies the same rule).
      this.size = room;
      return -1; // RecordCheck.PADDING
    }
    const d32 = m.d32;
    const w = index >> 2;
    const length = d32[w]!;
    const type = m.d16[(index >> 1) + 2]!;
    const size = (length + 23) & ~7;
    if (d32[w + 2] !== (pos | 0) || length < 0 || length > m.maxPayload || (type !== L.TYPE_PADDING && pos + size > head)) {
      return -3; // RecordCheck.TORN
    }
    if (type === L.TYPE_PADDING) {
      this.size = room;
      return -1; // RecordCheck.PADDING
    }
    this.size = size;
    if (m.crc && !crcOk(m.d8, index, length, d32[w + 3]!)) return -2; // RecordCheck.CORRUPT
    this.type = type;
    return length;
  }
}

/** CRC32C over header bytes +0..+11 and the payload, against the stored value (kept out of line). */
function crcOk(d8: Uint8Array, index: number, length: number, stored: number): boolean {
  const c = crc32cUpdate(0, d8, index, 12);
  return (crc32cUpdate(c, d8, index + L.RECORD_HEADER_BYTES, length) | 0) === stored;
}
