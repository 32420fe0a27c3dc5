/**
 * The benchmark payload: exactly {@link PAYLOAD_BYTES} ASCII bytes that carry who sent it, its
 * sequence number and the time it was meant to leave, so a subscriber can check count and order
 * and measure publish-to-delivery latency without any side channel.
 *
 * Times are `process.hrtime.bigint()` values: CLOCK_MONOTONIC on Linux, one clock for every
 * process on the machine, so a publisher's stamp and a subscriber's reading compare directly.
 *
 * @example
 * const p = encodePayload(3, 17, process.hrtime.bigint());
 * decodePayload(p); // { pub: 3, seq: 17, sentNs: ... }
 */
export const PAYLOAD_BYTES = 100;

const PAD = "x".repeat(PAYLOAD_BYTES);

export function encodePayload(pub: number, seq: number, sentNs: bigint): string {
  const head = `${pub}.${seq}.${sentNs}.`;
  return head + PAD.slice(head.length);
}

export interface DecodedPayload {
  pub: number;
  seq: number;
  sentNs: bigint;
}

export function decodePayload(payload: string): DecodedPayload | null {
  if (payload.length !== PAYLOAD_BYTES) return null;
  const a = payload.indexOf(".");
  const b = payload.indexOf(".", a + 1);
  const c = payload.indexOf(".", b + 1);
  if (a < 1 || b < 0 || c < 0) return null;
  return { pub: Number(payload.slice(0, a)), seq: Number(payload.slice(a + 1, b)), sentNs: BigInt(payload.slice(b + 1, c)) };
}

/**
 * Checks what one subscriber received: every publisher's messages exactly once, in the order
 * that publisher sent them. A run whose checker is not clean is reported as failed, not as fast.
 */
export class OrderChecker {
  readonly #next: number[];
  received = 0;
  outOfOrder = 0;
  duplicates = 0;
  malformed = 0;
  gaps = 0;

  constructor(publishers: number) {
    this.#next = new Array(publishers).fill(0);
  }

  /** Record one message; returns its decoded payload (or null when malformed). */
  accept(payload: string): DecodedPayload | null {
    const d = decodePayload(payload);
    this.received++;
    if (!d || !(d.pub >= 0 && d.pub < this.#next.length)) {
      this.malformed++;
      return null;
    }
    const expected = this.#next[d.pub]!;
    if (d.seq === expected) this.#next[d.pub] = expected + 1;
    else if (d.seq < expected) this.duplicates++;
    else {
      // A hole: count it once and carry on from here so one loss is not reported a million times.
      this.gaps += d.seq - expected;
      this.outOfOrder++;
      this.#next[d.pub] = d.seq + 1;
    }
    return d;
  }

  /** Messages received in order from each publisher so far. */
  get inOrder(): number {
    return this.#next.reduce((a, b) => a + b, 0);
  }

  summary(expectedPerPublisher: number): CheckSummary {
    const missing = this.#next.reduce((sum, n) => sum + Math.max(0, expectedPerPublisher - n), 0) + this.gaps;
    const ok = this.outOfOrder === 0 && this.duplicates === 0 && this.malformed === 0 && missing === 0;
    return { ok, received: this.received, missing, outOfOrder: this.outOfOrder, duplicates: this.duplicates, malformed: this.malformed };
  }
}

export interface CheckSummary {
  ok: boolean;
  received: number;
  missing: number;
  outOfOrder: number;
  duplicates: number;
  malformed: number;
}
