/**
 * MemoryRing: the messages a `memory` topic holds (protocol/durability.ts). Nothing is written
 * to storage; the ring keeps the newest messages so that a subscriber a little behind (waiting
 * for credit, or just subscribed from an offset) still gets them, and drops the oldest beyond
 * {@link MEMORY_RING_MESSAGES} or {@link MEMORY_RING_BYTES}. What it held is gone when the object
 * restarts (hibernation, eviction, a crash).
 *
 * Rows are appended at the tail and dropped from the front; `#start` indexes the first live row
 * and the array is compacted once the dead front is as large as the live part, so a push and a
 * drop cost O(1) amortised.
 */
import type { StoredRow } from "./log.ts";

/** Most messages a memory topic holds. */
export const MEMORY_RING_MESSAGES = 10_000;
/** Most payload bytes a memory topic holds. */
export const MEMORY_RING_BYTES = 8 * 1024 * 1024;

interface RingRow extends StoredRow {
  size: number;
}

export class MemoryRing {
  #rows: RingRow[] = [];
  #start = 0;
  #bytes = 0;
  /** Offset of the next message: the ring's head. */
  #head: number;

  /** An empty ring whose first message will get offset `head`. */
  constructor(head: number) {
    this.#head = head;
  }

  get head(): number {
    return this.#head;
  }

  /** First offset held (the head when empty). */
  get earliest(): number {
    return this.#start < this.#rows.length ? this.#rows[this.#start]!.offset : this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Add messages at consecutive offsets from the head, all stamped `time`; drops the oldest past the limits. */
  push(messages: readonly { body: string; size: number }[], time: number): void {
    for (const m of messages) {
      this.#rows.push({ offset: this.#head++, time, body: m.body, size: m.size });
      this.#bytes += m.size;
    }
    while (this.#rows.length - this.#start > MEMORY_RING_MESSAGES || (this.#bytes > MEMORY_RING_BYTES && this.#rows.length - this.#start > 1)) {
      this.#bytes -= this.#rows[this.#start]!.size;
      this.#start++;
    }
    if (this.#start > 1024 && this.#start * 2 >= this.#rows.length) {
      this.#rows = this.#rows.slice(this.#start);
      this.#start = 0;
    }
  }

  /**
   * Up to `limit` messages from `from`, or from the earliest held when `from` was dropped (a
   * memory topic delivers at most once: what it no longer holds is skipped, not refused).
   * Stops once `maxBytes` is reached, always returning at least one message when there is one.
   */
  read(from: number, limit: number, maxBytes: number): StoredRow[] {
    const out: StoredRow[] = [];
    let i = this.#start + Math.max(0, from - this.earliest);
    let bytes = 0;
    for (; i < this.#rows.length && out.length < limit; i++) {
      const r = this.#rows[i]!;
      if (out.length > 0 && bytes + r.size > maxBytes) break;
      bytes += r.size;
      out.push({ offset: r.offset, time: r.time, body: r.body });
    }
    return out;
  }

  /** When the message at `offset` was published, or null when the ring does not hold it. */
  timeOf(offset: number): number | null {
    const i = this.#start + offset - this.earliest;
    return offset >= this.earliest && i < this.#rows.length ? this.#rows[i]!.time : null;
  }
}
