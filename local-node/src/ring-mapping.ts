/**
 * The ring's shared segment: where its file lives, mapping it and checking its header (`Mapping`),
 * and the doorbell housekeeping every role runs over the mapping (`healSleepers`).
 */
import { join } from "node:path";
import { RingError, RingErrorCode } from "./errors.ts";
import * as L from "./layout.ts";
import { native } from "./native.ts";
import { pidAlive, TWO_POW_32 } from "./ring-util.ts";

/** How long open() waits for a creator that has sized the file but not yet written the magic. */
const INIT_WAIT_MS = 1000;
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
export class Mapping {
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
      if (code === "EEMPTY")
        throw new RingError(RingErrorCode.FOREIGN, `${path} is empty: not a ring, or its creator died while creating it`, { cause: error });
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
 * Take back the doorbell count of consumers that died while asleep (their slot's sleeping flag is
 * still 1 and their pid is gone). Without this the producer would issue a useless FUTEX_WAKE
 * syscall on every head store forever. Run on open, on create/adopt and by a producer whose wakes
 * keep finding nobody.
 */
export function healSleepers(m: Mapping): number {
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
