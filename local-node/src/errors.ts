/**
 * Typed errors for the local node. Every error has a stable `code`; match on it, not on the message.
 *
 * @example
 * try { Ring.open("agents") } catch (e) { if (e instanceof RingError && e.code === "RING_NOT_FOUND") … }
 */
export const RingErrorCode = {
  /** No segment with that name in /dev/shm. */
  NOT_FOUND: "RING_NOT_FOUND",
  /** `create` with `exclusive: true` and the segment exists. */
  EXISTS: "RING_EXISTS",
  /** The segment does not start with the Dovetail magic: some other program's file. */
  FOREIGN: "RING_FOREIGN",
  /** The segment was made by another layout version of this library. */
  VERSION: "RING_VERSION",
  /** Header sizes disagree with the file or with the options asked for. */
  MISMATCH: "RING_MISMATCH",
  /** Another live process is the producer (one producer per ring). */
  HAS_PRODUCER: "RING_HAS_PRODUCER",
  /** Every consumer slot is held by a live consumer. */
  NO_SLOT: "RING_NO_SLOT",
  /** The handle was closed. */
  CLOSED: "RING_CLOSED",
  /** A record or batch larger than the ring can ever hold. */
  TOO_LARGE: "RING_TOO_LARGE",
  /** Bad name or option. */
  INVALID: "RING_INVALID",
} as const;
export type RingErrorCode = (typeof RingErrorCode)[keyof typeof RingErrorCode];

export class RingError extends Error {
  readonly code: RingErrorCode;
  constructor(code: RingErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RingError";
    this.code = code;
  }
}

export const RelayErrorCode = {
  /** A frame failed to parse: bad length, version or type. The connection is closed. */
  BAD_FRAME: "RELAY_BAD_FRAME",
  /** The relay has no producer handle, so remote publishing is refused. */
  NOT_PRODUCER: "RELAY_NOT_PRODUCER",
  /** The ring was full for longer than the relay's publish timeout. */
  FULL: "RELAY_FULL",
  /** The client queue passed its limit and the server dropped the connection. */
  SLOW: "RELAY_SLOW",
  /** The client was closed. */
  CLOSED: "RELAY_CLOSED",
} as const;
export type RelayErrorCode = (typeof RelayErrorCode)[keyof typeof RelayErrorCode];

export class RelayError extends Error {
  readonly code: RelayErrorCode;
  constructor(code: RelayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RelayError";
    this.code = code;
  }
}

export const BridgeErrorCode = {
  /** Bad option: unknown direction, `both` (a ring has one producer), bad format or number. */
  INVALID: "BRIDGE_INVALID",
  /**
   * No safe resume point: the ring and the edge topic disagree (the ring was recreated, the
   * checkpoint names another topic, or the edge topic's tail has no trace of this ring within the
   * scan limit). Nothing is guessed; pass `from` or use a fresh topic or ring.
   */
  RESUME: "BRIDGE_RESUME",
  /** The edge refused a record or the subscription failed; the bridge stopped (cause attached). */
  EDGE: "BRIDGE_EDGE",
  /** The bridge was closed. */
  CLOSED: "BRIDGE_CLOSED",
} as const;
export type BridgeErrorCode = (typeof BridgeErrorCode)[keyof typeof BridgeErrorCode];

/**
 * A bridge failure with a stable `code`.
 *
 * @example
 * try { await b.done } catch (e) { if (e instanceof BridgeError && e.code === "BRIDGE_RESUME") … }
 */
export class BridgeError extends Error {
  readonly code: BridgeErrorCode;
  constructor(code: BridgeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BridgeError";
    this.code = code;
  }
}
