/**
 * The relay's binary wire protocol, defined once. Every frame starts with an 8-byte header and is
 * padded to a multiple of 8 bytes; all integers are little-endian; offsets are u64 carried as two
 * u32 (low word first) so neither side needs BigInt.
 *
 * | +0 u32 length (whole frame incl. header and padding) | +4 u8 version | +5 u8 flags | +6 u16 type |
 *
 * Compatibility: a receiver rejects an unknown version or type with ERROR (BAD_FRAME) and closes;
 * new frame types get new numbers, existing bodies only grow at the end (readers ignore extra bytes).
 *
 * @example
 * const reader = new FrameReader();
 * reader.push(chunk);
 * for (let f = reader.next(); f !== null; f = reader.next()) if (f.type === "welcome") …
 */

export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 8;
/** Largest frame either side accepts; a bigger length is a protocol error, not an allocation. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** A RECORDS entry: u32 offset lo, u32 offset hi, u32 length, u16 type, u16 flags, payload, pad. */
export const RECORD_ENTRY_HEADER_BYTES = 16;
/** A PUBLISH entry: u32 length, u16 type, u16 flags, payload, pad. */
export const PUBLISH_ENTRY_HEADER_BYTES = 8;
/** HELLO resumeFrom meaning "no history, only records from now on". */
export const RESUME_FROM_NOW = -1;

const TWO_POW_32 = 4294967296;

export const FrameType = {
  /** client -> server, first frame. Body: u64 resumeFrom (all ones = from now). Asks for records with offset >= resumeFrom. */
  HELLO: 1,
  /** server -> client, answer to HELLO. Body: u64 head, u64 oldest replayable offset, u32 maxQueueBytes, u32 ring capacity. */
  WELCOME: 2,
  /** server -> client, a batch of ring records (one write per batch). Body: u32 count, u32 0, entries. */
  RECORDS: 3,
  /** client -> server, records to publish into the ring. Body: u32 count, u32 requestId, entries. */
  PUBLISH: 4,
  /** server -> client, PUBLISH done. Body: u32 requestId, u32 count, u64 offset of the last record. */
  PUBLISHED: 5,
  /** server -> client, the client's send queue passed the warning mark; it will be dropped at the limit. Body: u32 queued, u32 limit. */
  WARN: 6,
  /** server -> client, records the client will never get (resume point no longer kept, or relay lost them). Body: u64 from, u64 to. */
  GAP: 7,
  /** either way, a failure. Body: u16 code, u16 0, u32 requestId (0 = connection-level), utf8 message. Connection-level errors are followed by close. */
  ERROR: 8,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const ErrorCode = {
  BAD_FRAME: 1,
  NOT_PRODUCER: 2,
  FULL: 3,
  SLOW: 4,
  TOO_LARGE: 5,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export type Frame =
  | { type: "hello"; resumeFrom: number }
  | { type: "welcome"; head: number; oldest: number; maxQueueBytes: number; capacity: number }
  | { type: "records"; count: number; bytes: Uint8Array; start: number; end: number }
  | { type: "publish"; count: number; requestId: number; bytes: Uint8Array; start: number; end: number }
  | { type: "published"; requestId: number; count: number; lastOffset: number }
  | { type: "warn"; queuedBytes: number; limitBytes: number }
  | { type: "gap"; from: number; to: number }
  | { type: "error"; code: number; requestId: number; message: string };

/** A frame that failed to parse; the connection must be closed after reporting it. */
export interface FrameError {
  type: "invalid";
  reason: string;
}

export function pad8(n: number): number {
  return (n + 7) & ~7;
}

function readU64(view: DataView, at: number): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  if (hi === 0xffffffff && lo === 0xffffffff) return RESUME_FROM_NOW;
  return hi * TWO_POW_32 + lo;
}

function writeU64(view: DataView, at: number, value: number): void {
  if (value < 0) {
    view.setUint32(at, 0xffffffff, true);
    view.setUint32(at + 4, 0xffffffff, true);
    return;
  }
  view.setUint32(at, value % TWO_POW_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_POW_32), true);
}

function header(bytes: Uint8Array, type: FrameType, length: number): DataView {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(0, length, true);
  bytes[4] = PROTOCOL_VERSION;
  bytes[5] = 0;
  view.setUint16(6, type, true);
  return view;
}

/**
 * Parse one complete frame at `raw[start, start+length)`. Returns a typed frame or a FrameError;
 * RECORDS and PUBLISH keep pointing into `raw` (iterate them before reusing the buffer).
 */
export function parseFrame(raw: Uint8Array, start = 0, length = raw.length - start): Frame | FrameError {
  if (length < FRAME_HEADER_BYTES) return { type: "invalid", reason: `frame of ${length} bytes is shorter than its header` };
  const view = new DataView(raw.buffer, raw.byteOffset + start, length);
  const declared = view.getUint32(0, true);
  if (declared !== length) return { type: "invalid", reason: `frame says ${declared} bytes, got ${length}` };
  if (raw[start + 4] !== PROTOCOL_VERSION) return { type: "invalid", reason: `protocol version ${raw[start + 4]}, expected ${PROTOCOL_VERSION}` };
  const type = view.getUint16(6, true);
  const body = length - FRAME_HEADER_BYTES;
  const need = (n: number): FrameError | null => (body < n ? { type: "invalid", reason: `frame type ${type} body ${body} < ${n} bytes` } : null);
  switch (type) {
    case FrameType.HELLO:
      return need(8) ?? { type: "hello", resumeFrom: readU64(view, 8) };
    case FrameType.WELCOME:
      return (
        need(24) ?? {
          type: "welcome",
          head: readU64(view, 8),
          oldest: readU64(view, 16),
          maxQueueBytes: view.getUint32(24, true),
          capacity: view.getUint32(28, true),
        }
      );
    case FrameType.RECORDS:
      return need(8) ?? { type: "records", count: view.getUint32(8, true), bytes: raw, start: start + 16, end: start + length };
    case FrameType.PUBLISH:
      return (
        need(8) ?? { type: "publish", count: view.getUint32(8, true), requestId: view.getUint32(12, true), bytes: raw, start: start + 16, end: start + length }
      );
    case FrameType.PUBLISHED:
      return need(16) ?? { type: "published", requestId: view.getUint32(8, true), count: view.getUint32(12, true), lastOffset: readU64(view, 16) };
    case FrameType.WARN:
      return need(8) ?? { type: "warn", queuedBytes: view.getUint32(8, true), limitBytes: view.getUint32(12, true) };
    case FrameType.GAP:
      return need(16) ?? { type: "gap", from: readU64(view, 8), to: readU64(view, 16) };
    case FrameType.ERROR: {
      const missing = need(8);
      if (missing) return missing;
      const textEnd = start + length;
      let end = start + 16;
      while (end < textEnd && raw[end] !== 0) end++;
      return {
        type: "error",
        code: view.getUint16(8, true),
        requestId: view.getUint32(12, true),
        message: new TextDecoder().decode(raw.subarray(start + 16, end)),
      };
    }
    default:
      return { type: "invalid", reason: `unknown frame type ${type}` };
  }
}

/**
 * Walk the entries of a RECORDS frame without allocating: `fn(bytes, start, length, type, offset)`.
 * Returns false if an entry runs past the frame (a protocol error).
 */
export function forEachRecord(
  frame: { count: number; bytes: Uint8Array; start: number; end: number },
  fn: (bytes: Uint8Array, start: number, length: number, type: number, offset: number) => void,
): boolean {
  const { bytes, end, count } = frame;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = frame.start;
  for (let i = 0; i < count; i++) {
    if (at + RECORD_ENTRY_HEADER_BYTES > end) return false;
    const offset = view.getUint32(at + 4, true) * TWO_POW_32 + view.getUint32(at, true);
    const length = view.getUint32(at + 8, true);
    const type = view.getUint16(at + 12, true);
    const payload = at + RECORD_ENTRY_HEADER_BYTES;
    if (payload + length > end) return false;
    fn(bytes, payload, length, type, offset);
    at = payload + pad8(length);
  }
  return true;
}

/** Walk a PUBLISH frame's entries; returns false on a malformed entry. */
export function forEachPublished(
  frame: { count: number; bytes: Uint8Array; start: number; end: number },
  fn: (bytes: Uint8Array, start: number, length: number, type: number) => void,
): boolean {
  const { bytes, end, count } = frame;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = frame.start;
  for (let i = 0; i < count; i++) {
    if (at + PUBLISH_ENTRY_HEADER_BYTES > end) return false;
    const length = view.getUint32(at, true);
    const type = view.getUint16(at + 4, true);
    const payload = at + PUBLISH_ENTRY_HEADER_BYTES;
    if (payload + length > end) return false;
    fn(bytes, payload, length, type);
    at = payload + pad8(length);
  }
  return true;
}

/**
 * Builds one RECORDS frame in a reusable scratch buffer; `finish()` copies it out exactly sized
 * (the copy is what lets the same frame go to every client while the scratch is reused).
 */
export class RecordsEncoder {
  private scratch: Buffer;
  private view: DataView;
  private at = 16;
  private sourceBytes: Uint8Array | null = null;
  private source: Buffer | null = null;
  count = 0;
  firstOffset = -1;
  endOffset = -1;

  constructor(initialBytes = 1 << 20) {
    this.scratch = Buffer.allocUnsafeSlow(initialBytes);
    this.view = new DataView(this.scratch.buffer, this.scratch.byteOffset, this.scratch.byteLength);
  }

  reset(): void {
    this.at = 16;
    this.count = 0;
    this.firstOffset = -1;
    this.endOffset = -1;
  }

  /** Append one record (bytes[start, start+length)). */
  add(bytes: Uint8Array, start: number, length: number, type: number, offset: number): void {
    const size = RECORD_ENTRY_HEADER_BYTES + pad8(length);
    if (this.at + size > this.scratch.length) this.grow(this.at + size);
    const at = this.at;
    const view = this.view;
    view.setUint32(at, offset % TWO_POW_32, true);
    view.setUint32(at + 4, Math.floor(offset / TWO_POW_32), true);
    view.setUint32(at + 8, length, true);
    view.setUint32(at + 12, type, true); // type u16 + flags u16 (0)
    // Buffer#copy over a cached Buffer view of the source: no per-record subarray allocation.
    if (bytes !== this.sourceBytes) {
      this.sourceBytes = bytes;
      this.source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    this.source!.copy(this.scratch, at + RECORD_ENTRY_HEADER_BYTES, start, start + length);
    this.at = at + size;
    if (this.count++ === 0) this.firstOffset = offset;
    this.endOffset = offset + 1;
  }

  finish(): Buffer {
    const length = this.at;
    const frame = Buffer.allocUnsafe(length);
    this.scratch.copy(frame, 0, 0, length);
    const view = header(frame, FrameType.RECORDS, length);
    view.setUint32(8, this.count, true);
    view.setUint32(12, 0, true);
    return frame;
  }

  private grow(min: number): void {
    let size = this.scratch.length * 2;
    while (size < min) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.scratch.copy(next, 0, 0, this.at);
    this.scratch = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }
}

export function encodeHello(resumeFrom: number): Buffer {
  const frame = Buffer.alloc(16);
  writeU64(header(frame, FrameType.HELLO, 16), 8, resumeFrom);
  return frame;
}

export function encodeWelcome(head: number, oldest: number, maxQueueBytes: number, capacity: number): Buffer {
  const frame = Buffer.alloc(32);
  const view = header(frame, FrameType.WELCOME, 32);
  writeU64(view, 8, head);
  writeU64(view, 16, oldest);
  view.setUint32(24, maxQueueBytes, true);
  view.setUint32(28, capacity, true);
  return frame;
}

export function encodePublish(records: readonly Uint8Array[], requestId: number, type = 0): Buffer {
  let length = 16;
  for (const r of records) length += PUBLISH_ENTRY_HEADER_BYTES + pad8(r.length);
  const frame = Buffer.alloc(length);
  const view = header(frame, FrameType.PUBLISH, length);
  view.setUint32(8, records.length, true);
  view.setUint32(12, requestId, true);
  let at = 16;
  for (const r of records) {
    view.setUint32(at, r.length, true);
    view.setUint16(at + 4, type, true);
    frame.set(r, at + PUBLISH_ENTRY_HEADER_BYTES);
    at += PUBLISH_ENTRY_HEADER_BYTES + pad8(r.length);
  }
  return frame;
}

export function encodePublished(requestId: number, count: number, lastOffset: number): Buffer {
  const frame = Buffer.alloc(24);
  const view = header(frame, FrameType.PUBLISHED, 24);
  view.setUint32(8, requestId, true);
  view.setUint32(12, count, true);
  writeU64(view, 16, lastOffset);
  return frame;
}

export function encodeWarn(queuedBytes: number, limitBytes: number): Buffer {
  const frame = Buffer.alloc(16);
  const view = header(frame, FrameType.WARN, 16);
  view.setUint32(8, Math.min(queuedBytes, 0xffffffff), true);
  view.setUint32(12, Math.min(limitBytes, 0xffffffff), true);
  return frame;
}

export function encodeGap(from: number, to: number): Buffer {
  const frame = Buffer.alloc(24);
  const view = header(frame, FrameType.GAP, 24);
  writeU64(view, 8, from);
  writeU64(view, 16, to);
  return frame;
}

export function encodeError(code: ErrorCode, message: string, requestId = 0): Buffer {
  const text = Buffer.from(message, "utf8");
  const length = pad8(16 + text.length);
  const frame = Buffer.alloc(length);
  const view = header(frame, FrameType.ERROR, length);
  view.setUint16(8, code, true);
  view.setUint32(12, requestId, true);
  text.copy(frame, 16);
  return frame;
}

/**
 * Splits a byte stream into frames, from one reusable buffer. A chunk that holds whole frames is
 * parsed in place (no copy); only a partial tail is kept, and the buffer is compacted only when
 * the tail would not fit.
 */
export class FrameReader {
  private buffer: Buffer;
  private start = 0;
  private end = 0;
  private chunk: Buffer | null = null;
  private chunkAt = 0;

  constructor(initialBytes = 1 << 20) {
    this.buffer = Buffer.allocUnsafeSlow(initialBytes);
  }

  /** Add received bytes. Call next() until it returns null before the next push. */
  push(chunk: Buffer): void {
    if (this.start === this.end) {
      this.start = this.end = 0;
      this.chunk = chunk;
      this.chunkAt = 0;
      return;
    }
    this.append(chunk, 0);
  }

  /** The next complete frame, a FrameError, or null when more bytes are needed. */
  next(): Frame | FrameError | null {
    if (this.chunk !== null) {
      const chunk = this.chunk;
      const at = this.chunkAt;
      const left = chunk.length - at;
      if (left >= FRAME_HEADER_BYTES) {
        const length = chunk.readUInt32LE(at);
        const bad = this.checkLength(length);
        if (bad) return bad;
        if (left >= length) {
          this.chunkAt = at + length;
          return parseFrame(chunk, at, length);
        }
      }
      this.chunk = null;
      if (left > 0) this.append(chunk, at);
      return null;
    }
    const available = this.end - this.start;
    if (available < FRAME_HEADER_BYTES) return null;
    const length = this.buffer.readUInt32LE(this.start);
    const bad = this.checkLength(length);
    if (bad) return bad;
    if (available < length) return null;
    const at = this.start;
    this.start += length;
    return parseFrame(this.buffer, at, length);
  }

  private checkLength(length: number): FrameError | null {
    if (length < FRAME_HEADER_BYTES || length > MAX_FRAME_BYTES || (length & 7) !== 0) {
      return { type: "invalid", reason: `frame length ${length} is not a multiple of 8 in [8, ${MAX_FRAME_BYTES}]` };
    }
    return null;
  }

  private append(chunk: Buffer, from: number): void {
    const bytes = chunk.length - from;
    if (this.end + bytes > this.buffer.length) {
      const live = this.end - this.start;
      if (live + bytes > this.buffer.length) {
        let size = this.buffer.length * 2;
        while (size < live + bytes) size *= 2;
        const next = Buffer.allocUnsafeSlow(size);
        this.buffer.copy(next, 0, this.start, this.end);
        this.buffer = next;
      } else {
        this.buffer.copy(this.buffer, 0, this.start, this.end);
      }
      this.start = 0;
      this.end = live;
    }
    chunk.copy(this.buffer, this.end, from);
    this.end += bytes;
  }
}
