/**
 * Error codes shared by the bus and its clients. Every code listed here is documented in
 * docs/protocol.md and produced by at least one test. Codes are stable: a code is never reused
 * for a different meaning; new codes may be added in a minor protocol revision.
 *
 * Each code maps to the HTTP status the gateway answers with; WebSocket error frames carry the same
 * code (and no status).
 */
export const ERROR_CODES = {
  /** The frame or body is not valid JSON, or not an object. */
  bad_frame: 400,
  /** A JSON frame or body is not valid UTF-8 (or, in a WebSocket text frame, holds a raw U+FFFD: see docs/protocol.md). */
  invalid_utf8: 400,
  /** A JSON value nests deeper than the protocol allows (MAX_JSON_DEPTH, docs/protocol.md). */
  too_deep: 400,
  /** A frame `type` this protocol version does not know. */
  unknown_type: 400,
  /** A field is missing, has the wrong type, or is out of range. `message` names the field. */
  invalid_field: 400,
  /** The topic name breaks the naming rules (see docs/protocol.md, "Topic names"). */
  invalid_topic: 400,
  /** One message is larger than the topic's maximum message size. */
  message_too_large: 413,
  /** A publish frame or request carries more messages, or more bytes, than allowed at once. */
  batch_too_large: 413,
  /** The requested offset was removed by retention; `earliest` names the first one available. */
  offset_trimmed: 410,
  /** The requested offset is past the end of the log (`head` is the next offset to be written). */
  offset_out_of_range: 416,
  /** A `subscribe` on a socket that already has a subscription. */
  already_subscribed: 409,
  /** `credit` or `unsubscribe` on a socket without a subscription. */
  not_subscribed: 409,
  /** An idempotent producer skipped a sequence number; `expected` names the one the topic wants. */
  sequence_gap: 409,
  /** HTTP streams: the request conflicts with the stream's state (different configuration on create, content type mismatch, `Stream-Seq` not increasing). */
  conflict: 409,
  /** HTTP streams: the stream is closed; nothing more can be appended. */
  stream_closed: 409,
  /** HTTP streams: the stream was deleted but its forks still read its data. */
  stream_gone: 410,
  /** HTTP streams: an idempotent producer's epoch is older than the stream's (fenced). */
  stale_epoch: 403,
  /** Too many requests or frames; retry after `retryAfterMs`. */
  rate_limited: 429,
  /** Consumer groups: the job named is not held by this member at this delivery (unknown, settled, redelivered elsewhere, or timed out). */
  not_held: 409,
  /** Consumer groups: a `consume` on a socket that already consumes. */
  already_consuming: 409,
  /** Consumer groups: a `settle` on a socket that does not consume. */
  not_consuming: 409,
  /** Consumer groups: no such group on this topic. */
  group_not_found: 404,
  /** Consumer groups: the group was deleted while this member consumed from it. */
  group_deleted: 410,
  /** Durable Streams subscriptions (protocol 7.3): the callback, ack or release names a wake or generation that is not the current one; nothing was applied. The protocol's own spelling. */
  FENCED: 409,
  /** Durable Streams subscriptions (protocol 7.2): another worker holds the lease; `current_holder` and `generation` say who and which. */
  ALREADY_CLAIMED: 409,
  /** Durable Streams subscriptions (protocol 12.8): the webhook URL is not https, or targets this machine or a private network. */
  WEBHOOK_URL_REJECTED: 400,
  /** Durable Streams subscriptions: a claim found no linked stream past its cursor. */
  NO_PENDING_WORK: 409,
  /** Durable Streams subscriptions: an ack names a stream the subscription does not link, an offset that is malformed, behind its cursor or past the stream's tail; nothing was applied. */
  INVALID_OFFSET: 409,
  /** Request/reply: nobody serves this topic (for a durable request: no responder serves it durably); nothing was sent or stored. */
  no_responders: 503,
  /** Request/reply: every responder the request was handed to went away before replying; it may or may not have been handled. */
  responder_gone: 502,
  /** Request/reply: the responder's handler failed; `message` is its message, `remoteCode` its error's code when it had one. */
  remote_error: 502,
  /** The topic's durability is `memory`: it stores no messages, so the feature asked for (consumer groups, Durable Streams) is not available on it. */
  not_stored: 409,
  /** The topic was deleted while this socket was open (close code 4004 follows). */
  topic_deleted: 410,
  /** Agent registry: a newer connection registered this agent id (or it was removed over HTTP); this connection no longer holds it (close code 4009 follows on a presence socket). */
  agent_replaced: 409,
  /** Agent registry: no registered agent declares this capability (a typo is told apart from nobody being present). */
  unknown_capability: 404,
  /** Agent registry: an agent's metadata is larger than MAX_META_BYTES as JSON (protocol/agents.ts). */
  meta_too_large: 413,
  /** Agent registry: the tenant has MAX_AGENTS agents registered and all of them are present. */
  too_many_agents: 409,
  /** Pattern subscriptions: the pattern matches more topics than one subscription follows (MAX_PATTERN_TOPICS, protocol/patterns.ts). */
  too_many_topics: 409,
  /** Agent mail: a sender or recipient is not a registered agent of the tenant; nothing was sent. */
  unknown_recipient: 400,
  /** Agent mail: the search query is not valid FTS5 syntax (docs/mail.md, "Search"). */
  invalid_query: 400,
  /** The topic, route or resource does not exist. */
  not_found: 404,
  /** The route exists but not for this HTTP method. */
  method_not_allowed: 405,
  /** A WebSocket route was called without `Upgrade: websocket`. */
  upgrade_required: 426,
  /** The client asked for a protocol version the server does not speak. */
  unsupported_version: 400,
  /** No or bad credentials. */
  unauthorized: 401,
  /** Valid credentials that do not allow this action on this topic. */
  forbidden: 403,
  /** The server's storage is full; nothing of this request was stored. Retention and topic deletion still run. */
  storage_full: 507,
  /** The server failed; nothing the client sent was stored unless it was acknowledged. */
  internal: 500,
  /** Client side only: the client was closed, or the connection is gone and will not return. */
  closed: 0,
  /** No answer within the configured time: raised by clients, and sent by the server for a request whose reply did not come in time (HTTP 504). */
  timeout: 504,
  /** Client side only: the caller's `AbortSignal` ended the wait; `cause` is the signal's reason. */
  aborted: 0,
  /** Client side only: a received message does not fit the schema the application gave; `offset` and `issues` say which and why. */
  schema_mismatch: 0,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Extra facts an error may carry, by code. All optional on the wire. */
export interface ErrorDetails {
  /** `rate_limited`: how long to wait before retrying. */
  retryAfterMs?: number;
  /** `offset_trimmed`: the earliest offset still stored. */
  earliest?: number;
  /**
   * `offset_out_of_range`: the next offset the topic will assign. `stream_closed` (HTTP streams):
   * where the closed stream ends (its final `Stream-Next-Offset`).
   */
  head?: number;
  /** `sequence_gap`: the producer sequence number the topic expects next. */
  expected?: number;
  /** `sequence_gap` (HTTP streams): the `Producer-Seq` the request sent. */
  received?: number;
  /** `stale_epoch`: the stream's current producer epoch (`Producer-Epoch`). */
  epoch?: number;
  /** `ALREADY_CLAIMED`: the worker that holds the subscription's lease. */
  current_holder?: string;
  /** `ALREADY_CLAIMED`: the subscription's current wake generation. */
  generation?: number;
  /** `remote_error`: the code of the responder's error, when it had one. */
  remoteCode?: string;
  /** `schema_mismatch` (client side): the offset of the message that did not fit. */
  offset?: number;
  /** `schema_mismatch` (client side): what the schema said, as Standard Schema issues. */
  issues?: readonly SchemaIssue[];
}

/** One problem a schema found (the Standard Schema v1 issue shape; sdk/src/standard-schema.ts). */
export interface SchemaIssue {
  readonly message: string;
  readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined;
}

/** The JSON shape of every error the gateway returns: `{ "error": { code, message, ...details } }`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string } & ErrorDetails;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

/**
 * Every error raised by Dovetail, on the server or in a client, is a DovetailError with a stable
 * `code`.
 *
 * @example
 * try { await bus.publish("t", big) } catch (e) {
 *   if (e instanceof DovetailError && e.code === "message_too_large") shrink();
 * }
 */
export class DovetailError extends Error {
  override readonly name: string = "DovetailError";
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  /** HTTP status for this error (0 for client-only codes). */
  get status(): number {
    return ERROR_CODES[this.code];
  }

  /** The body the gateway sends for this error. */
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }

  /**
   * The one place that turns a server's error (an error frame or an HTTP error body) back into
   * an error object. Unknown codes become `internal` so old clients keep working with new servers.
   */
  static fromWire(raw: unknown, fallbackMessage = "unknown error"): DovetailError {
    const obj = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    const code = isErrorCode(obj.code) ? obj.code : "internal";
    const message = typeof obj.message === "string" ? obj.message : fallbackMessage;
    const details: ErrorDetails = {};
    for (const key of ["retryAfterMs", "earliest", "head", "expected", "received", "epoch", "generation"] as const) {
      if (typeof obj[key] === "number") details[key] = obj[key];
    }
    if (typeof obj.current_holder === "string") details.current_holder = obj.current_holder;
    if (typeof obj.remoteCode === "string") details.remoteCode = obj.remoteCode;
    return new DovetailError(code, message, details);
  }
}
