/**
 * RecordHeader.check on its own, over a Mapping of a plain ArrayBuffer (no shared memory): every
 * result it can give. It returns its codes as literals (see its comment), so these tests also pin
 * them to the names in RecordCheck that the reader compares against.
 */
import { describe, expect, it } from "vitest";
import { crc32cUpdate } from "../src/crc32c.ts";
import * as L from "../src/layout.ts";
import { Mapping } from "../src/ring-mapping.ts";
import { RecordCheck, RecordHeader } from "../src/ring-record.ts";

const CAPACITY_BYTES = 1024;

function mapping(crc: boolean): Mapping {
  const dataOffset = L.dataOffsetFor(1);
  const header = { capacity: CAPACITY_BYTES, maxConsumers: 1, flags: crc ? L.Flag.CRC : 0, dataOffset, stalenessMs: 0, maxPayload: CAPACITY_BYTES / 2 - 16 };
  return new Mapping("unit", "/nonexistent", new ArrayBuffer(dataOffset + CAPACITY_BYTES), header);
}

/** Write a record header (+ payload of `length` bytes of 7) at `pos` as the producer does. */
function put(m: Mapping, pos: number, length: number, type: number, stamp = pos): void {
  const index = pos & m.mask;
  m.d32[index >> 2] = length;
  m.d16[(index >> 1) + 2] = type;
  m.d16[(index >> 1) + 3] = m.crc ? L.Flag.CRC : 0;
  m.d32[(index >> 2) + 2] = stamp | 0;
  if (type !== L.TYPE_PADDING) m.d8.fill(7, index + L.RECORD_HEADER_BYTES, index + L.RECORD_HEADER_BYTES + length);
  const c = crc32cUpdate(0, m.d8, index, 12);
  m.d32[(index >> 2) + 3] = m.crc ? crc32cUpdate(c, m.d8, index + L.RECORD_HEADER_BYTES, length) : 0;
}

describe("RecordHeader.check", () => {
  it("returns the payload length of a good record, with its type and size", () => {
    const m = mapping(false);
    const h = new RecordHeader();
    put(m, 0, 5, 42);
    expect(h.check(m, 0, 0, 1 << 20)).toBe(5);
    expect(h.type).toBe(42);
    expect(h.size).toBe(L.recordBytes(5));
  });

  it("checks the record at a position past the first lap by its index and position stamp", () => {
    const m = mapping(false);
    const h = new RecordHeader();
    const pos = 3 * CAPACITY_BYTES + 64;
    put(m, pos, 0, 0);
    expect(h.check(m, pos & m.mask, pos, pos + 16)).toBe(0);
    expect(h.size).toBe(16);
  });

  it("reports an explicit padding record and the bytes to the end of the ring", () => {
    const m = mapping(false);
    const h = new RecordHeader();
    put(m, 1000, CAPACITY_BYTES - 1000 - 16, L.TYPE_PADDING);
    expect(h.check(m, 1000, 1000, 4096)).toBe(RecordCheck.PADDING);
    expect(h.size).toBe(CAPACITY_BYTES - 1000);
  });

  it("treats fewer than 16 bytes before the end as padding without reading them", () => {
    const m = mapping(false);
    const h = new RecordHeader();
    expect(h.check(m, CAPACITY_BYTES - 8, CAPACITY_BYTES - 8, 4096)).toBe(RecordCheck.PADDING);
    expect(h.size).toBe(8);
  });

  it("reports a torn header: wrong position stamp, bad length, or a record past the head", () => {
    const m = mapping(false);
    const h = new RecordHeader();
    put(m, 0, 5, 1, CAPACITY_BYTES); // the previous lap's record
    expect(h.check(m, 0, 0, 4096)).toBe(RecordCheck.TORN);
    put(m, 0, m.maxPayload + 1, 1);
    expect(h.check(m, 0, 0, 4096)).toBe(RecordCheck.TORN);
    put(m, 0, -1, 1);
    expect(h.check(m, 0, 0, 4096)).toBe(RecordCheck.TORN);
    put(m, 0, 100, 1);
    expect(h.check(m, 0, 0, L.recordBytes(100) - 8)).toBe(RecordCheck.TORN);
    expect(h.check(m, 0, 0, L.recordBytes(100))).toBe(100);
  });

  it("checks the CRC32C when the ring has it: a flipped payload byte is corrupt, with the size to skip", () => {
    const m = mapping(true);
    const h = new RecordHeader();
    put(m, 0, 20, 3);
    expect(h.check(m, 0, 0, 4096)).toBe(20);
    m.d8[L.RECORD_HEADER_BYTES + 4]! ^= 1;
    expect(h.check(m, 0, 0, 4096)).toBe(RecordCheck.CORRUPT);
    expect(h.size).toBe(L.recordBytes(20));
  });
});
