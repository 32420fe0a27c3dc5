/**
 * StreamService: the Durable Streams operations of one topic, run inside its Topic object over
 * the topic's own log and commit queue (so HTTP and WebSocket share offsets and order) and the
 * StreamState tables. Every operation answers with a {@link DsReply}, a transport-neutral HTTP
 * answer (status, protocol headers, body) that the gateway sends as it is; the gateway adds only
 * CORS and security headers.
 *
 * Errors use the Dovetail error body `{ error: { code, message } }` with protocol-mandated status
 * and headers (e.g. `409` + `Stream-Closed: true`, `403` + `Producer-Epoch`).
 */
import { DovetailError, type ErrorCode } from "../protocol/errors.ts";
import type { StreamReadReply } from "../protocol/stream-wait.ts";
import type { PublishResult } from "./commit-queue.ts";
import type { PreparedMessage, TopicLog } from "./log.ts";
import { knownError } from "./rpc-result.ts";
import { bodyAsBytes, bodyAsJson } from "../protocol/stored-message.ts";
import { concatBytes, encodeOffset, isJsonContentType, normalizeContentType, type ParsedOffset } from "./stream-format.ts";
import type { StreamRecord, StreamState } from "./stream-state.ts";

/** An HTTP answer built by the topic; the gateway sends it unchanged (plus CORS/security headers). */
export interface DsReply {
  status: number;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

/**
 * Messages of one append, already checked and encoded by the gateway: the stored bodies joined by
 * `\n` (a body never holds a raw newline: JSON text escapes it, base64 has none) and each one's
 * payload size. One string crosses the RPC boundary instead of one object per message, which
 * matters for producer batches of ~10,000 messages.
 */
export interface DsPayload {
  json: boolean;
  bodies: string;
  sizes: Uint32Array;
}

/** The prepared messages of a payload. */
export function payloadMessages(payload: DsPayload): PreparedMessage[] {
  const bodies = payload.bodies.split("\n");
  const out: PreparedMessage[] = new Array(bodies.length);
  for (let i = 0; i < bodies.length; i++) out[i] = { body: bodies[i]!, size: payload.sizes[i]! };
  return out;
}

export interface DsProducer {
  id: string;
  epoch: number;
  seq: number;
}

export interface DsCreateRequest {
  /** As sent; null when the request had none (default octet-stream, or the fork source's). */
  contentType: string | null;
  ttlSeconds: number | null;
  expiresAt: string | null;
  closed: boolean;
  /** Raw initial body, encoded by the gateway once the content type is known. */
  payload: DsPayload | null;
  fork: DsForkCopy | null;
}

/** What a fork copies from its source (copy-on-fork, docs/decisions/008-streams-state-and-waiting.md). */
export interface DsForkCopy {
  from: string;
  offset: number;
  subOffset: number;
  contentType: string;
  ttlSeconds: number | null;
  expiresAt: string | null;
  /** Message bodies of the source from its start up to the fork point (last one maybe cut). */
  bodies: string[];
  sizes: number[];
}

export interface DsAppendRequest {
  contentType: string | null;
  payload: DsPayload | null;
  close: boolean;
  streamSeq: string | null;
  producer: DsProducer | null;
}

export interface DsReadRequest {
  offset: ParsedOffset;
  /** The request waits for data (long-poll/SSE); `offset=now` then means "from the tail". */
  live: boolean;
  ifNoneMatch: string | null;
}

/** A read's answer plus what the gateway needs to decide whether to wait. */
/** A read as the topic composed it (protocol/stream-wait.ts carries it to a waiting gateway). */
export type DsReadReply = StreamReadReply;

/** Largest copy a fork makes of its source (an RPC message is limited to 32 MiB). */
export const FORK_COPY_MAX_BYTES = 16 * 1024 * 1024;
/** Content type of a topic created over WebSocket, seen over HTTP streams. */
export const IMPLICIT_CONTENT_TYPE = "application/json";

const CACHEABLE = "private, max-age=60, stale-while-revalidate=300";

function errorReply(status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): DsReply {
  return {
    status,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(new DovetailError(code, message).toBody()),
  };
}

export interface StreamServiceDeps {
  log: TopicLog;
  state: StreamState;
  /** Queue prepared messages for the group commit. */
  submit(messages: PreparedMessage[]): Promise<PublishResult>;
  /** Commit whatever waits now. */
  flush(): void;
  /** Messages accepted but not yet committed. */
  waiting(): number;
  /** Wake every waiting reader (stream closed or deleted). */
  wakeAll(): void;
  pageMessages: number;
  pageBytes: number;
}

export class StreamService {
  readonly #d: StreamServiceDeps;

  constructor(deps: StreamServiceDeps) {
    this.#d = deps;
  }

  /**
   * Queue messages for the group commit (which commits a lone append on an idle topic at once);
   * `force` commits now whatever waits (closes and creates).
   */
  #submit(messages: PreparedMessage[], force: boolean): Promise<PublishResult> {
    const done = this.#d.submit(messages);
    if (force) this.#d.flush();
    return done;
  }

  /** Tail: where the next message will go, counting accepted messages not yet committed. */
  #tail(): number {
    return this.#d.log.head + this.#d.waiting();
  }

  /**
   * The live stream, applying expiry first. A topic that never saw a DS request but has messages
   * (created over WebSocket) is a JSON stream from its first message.
   */
  #live(now: number): StreamRecord | null {
    const { state, log } = this.#d;
    const r = state.record;
    if (r) {
      if (!r.softDeleted && state.isExpired(now)) {
        if (r.refs > 0) {
          state.update({ softDeleted: true });
          state.flushRecord();
        } else {
          state.delete(this.#tail());
          this.#d.wakeAll();
          return null;
        }
      }
      return state.record;
    }
    if (!state.hasHistory && log.head > 0) {
      state.create(this.#newRecord(IMPLICIT_CONTENT_TYPE, 0, now));
      return state.record;
    }
    return null;
  }

  #newRecord(contentType: string, base: number, now: number): StreamRecord {
    return {
      contentType,
      base,
      closed: false,
      closedBy: null,
      ttlSeconds: null,
      expiresAt: null,
      lastAccess: now,
      streamSeq: null,
      forkedFrom: null,
      forkOffset: null,
      forkSubOffset: null,
      refs: 0,
      softDeleted: false,
    };
  }

  #missing(now: number): DsReply | null {
    const r = this.#live(now);
    if (!r) return errorReply(404, "not_found", "stream not found");
    if (r.softDeleted) return errorReply(410, "stream_gone", "stream was deleted; its forks still read its data");
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // PUT

  async create(req: DsCreateRequest, now: number): Promise<DsReply> {
    const { state } = this.#d;
    const existing = this.#live(now);
    if (existing) {
      if (existing.softDeleted) return errorReply(409, "conflict", "a deleted stream with live forks still holds this path");
      const wantType = req.contentType ?? req.fork?.contentType ?? "application/octet-stream";
      const same =
        normalizeContentType(existing.contentType) === normalizeContentType(wantType) &&
        existing.ttlSeconds === (req.ttlSeconds ?? (req.fork && !req.expiresAt ? req.fork.ttlSeconds : null)) &&
        existing.expiresAt === (req.expiresAt ?? (req.fork && req.ttlSeconds === null ? req.fork.expiresAt : null)) &&
        existing.closed === req.closed &&
        existing.forkedFrom === (req.fork?.from ?? null) &&
        (req.fork === null || (existing.forkOffset === req.fork.offset && (existing.forkSubOffset ?? 0) === req.fork.subOffset));
      if (!same) return errorReply(409, "conflict", "stream exists with a different configuration");
      return { status: 200, headers: this.#metaHeaders(existing, false) };
    }
    const contentType = req.fork ? (req.contentType ?? req.fork.contentType) : (req.contentType ?? "application/octet-stream");
    if (req.fork && normalizeContentType(contentType) !== normalizeContentType(req.fork.contentType)) {
      return errorReply(409, "conflict", `fork content type ${contentType} differs from the source's ${req.fork.contentType}`);
    }
    const base = state.deletedAt ?? this.#d.log.head;
    const record = this.#newRecord(contentType, base, now);
    record.ttlSeconds = req.ttlSeconds;
    record.expiresAt = req.expiresAt;
    if (req.fork) {
      // Fork TTL table (protocol 4.2): a fork asking for neither inherits the source's.
      if (req.ttlSeconds === null && req.expiresAt === null) {
        record.ttlSeconds = req.fork.ttlSeconds;
        record.expiresAt = req.fork.expiresAt;
      }
      record.forkedFrom = req.fork.from;
      record.forkOffset = req.fork.offset;
      record.forkSubOffset = req.fork.subOffset;
    }
    record.closed = req.closed;
    state.create(record);
    const messages: PreparedMessage[] = [];
    if (req.fork) {
      for (let i = 0; i < req.fork.bodies.length; i++) messages.push({ body: req.fork.bodies[i]!, size: req.fork.sizes[i]! });
    }
    if (req.payload) messages.push(...payloadMessages(req.payload));
    if (messages.length > 0) {
      await this.#submit(messages, true);
    }
    return { status: 201, headers: this.#metaHeaders(record, false) };
  }

  // -------------------------------------------------------------------------------------------
  // POST

  async append(req: DsAppendRequest, now: number): Promise<DsReply> {
    const missing = this.#missing(now);
    if (missing) return missing;
    const { state } = this.#d;
    const r = state.record!;
    const p = req.producer;
    const check = p ? state.checkProducer(p.id, p.epoch, p.seq, now) : null;
    const producerHeaders = (seq: number): Record<string, string> => (p ? { "producer-epoch": String(p.epoch), "producer-seq": String(seq) } : {});
    if (check?.status === "stale_epoch") {
      return errorReply(403, "stale_epoch", `producer epoch ${p!.epoch} is older than ${check.currentEpoch}`, {
        "producer-epoch": String(check.currentEpoch),
      });
    }
    if (r.closed) {
      const final = { "stream-next-offset": encodeOffset(this.#tail()), "stream-closed": "true" };
      const by = r.closedBy;
      if (p && by && by.id === p.id && by.epoch === p.epoch && by.seq === p.seq) {
        return { status: 204, headers: { ...final, ...producerHeaders(p.seq) } };
      }
      if (req.close && !req.payload) return { status: 204, headers: final };
      return errorReply(409, "stream_closed", "stream is closed", final);
    }
    if (req.payload && req.contentType !== null && normalizeContentType(req.contentType) !== normalizeContentType(r.contentType)) {
      return errorReply(409, "conflict", `content type ${req.contentType} does not match the stream's ${r.contentType}`);
    }
    if (check) {
      switch (check.status) {
        case "duplicate":
          return { status: 204, headers: { ...producerHeaders(check.lastSeq), "stream-next-offset": encodeOffset(this.#tail()) } };
        case "invalid_epoch_seq":
          return errorReply(400, "invalid_field", "a new producer epoch must start at Producer-Seq 0");
        case "gap":
          return errorReply(409, "sequence_gap", `producer sent seq ${check.received}; expected ${check.expected}`, {
            "producer-expected-seq": String(check.expected),
            "producer-received-seq": String(check.received),
          });
      }
    }
    if (req.streamSeq !== null && r.streamSeq !== null && req.streamSeq <= r.streamSeq) {
      return errorReply(409, "conflict", `Stream-Seq ${req.streamSeq} is not after ${r.streamSeq}`);
    }
    // Accepted: state changes now (so pipelined requests see them) and is written with the commit.
    if (check?.status === "accepted") state.acceptProducer(p!.id, check.next);
    const change: Partial<StreamRecord> = {};
    if (req.streamSeq !== null) change.streamSeq = req.streamSeq;
    if (req.close) {
      change.closed = true;
      change.closedBy = p ? { id: p.id, epoch: p.epoch, seq: p.seq } : null;
    }
    if (r.ttlSeconds !== null) change.lastAccess = now;
    state.update(change);
    const headers: Record<string, string> = {};
    if (req.payload) {
      let result: PublishResult;
      try {
        result = await this.#submit(payloadMessages(req.payload), req.close);
      } catch (error) {
        state.discardPending();
        // A refused commit (`storage_full`: nothing stored) is answered with its status.
        const known = knownError(error);
        if (known) return errorReply(known.status, known.code, known.message);
        throw error;
      }
      headers["stream-next-offset"] = encodeOffset(result.offset + result.count);
    } else {
      // Close-only: nothing to commit with it, so write it now and wake every reader.
      state.persist();
      headers["stream-next-offset"] = encodeOffset(this.#tail());
    }
    if (req.close) {
      headers["stream-closed"] = "true";
      this.#d.wakeAll();
    }
    // 200 marks new data from a producer (protocol 5.2.1); a close-only or plain append is 204.
    return { status: p && req.payload ? 200 : 204, headers: { ...headers, ...producerHeaders(p ? p.seq : 0) } };
  }

  // -------------------------------------------------------------------------------------------
  // HEAD, DELETE

  head(now: number): DsReply {
    const missing = this.#missing(now);
    if (missing) return { status: missing.status, headers: {} };
    const r = this.#d.state.record!;
    const headers = this.#metaHeaders(r, true);
    headers["cache-control"] = "no-store";
    headers.etag = `"${r.base}:-1:${encodeOffset(this.#d.log.head)}${r.closed ? ":c" : ""}"`;
    return { status: 200, headers };
  }

  /** Delete; returns the source to release when this was a fork. */
  delete(now: number): { reply: DsReply; releaseSource: string | null } {
    const missing = this.#missing(now);
    if (missing) return { reply: missing, releaseSource: null };
    const r = this.#d.state.record!;
    if (r.refs > 0) {
      this.#d.state.update({ softDeleted: true });
      this.#d.state.flushRecord();
    } else {
      this.#d.state.delete(this.#tail());
    }
    this.#d.wakeAll();
    return { reply: { status: 204, headers: {} }, releaseSource: r.refs > 0 ? null : r.forkedFrom };
  }

  /** A fork of this stream was created (+1) or deleted (-1). Returns this stream's own source when it goes away. */
  forkRef(delta: 1 | -1): string | null {
    const r = this.#d.state.record;
    if (!r) return null;
    const refs = Math.max(0, r.refs + delta);
    if (refs === 0 && r.softDeleted) {
      this.#d.state.delete(this.#tail());
      return r.forkedFrom;
    }
    this.#d.state.update({ refs });
    this.#d.state.flushRecord();
    return null;
  }

  #metaHeaders(r: StreamRecord, withTtl: boolean): Record<string, string> {
    const h: Record<string, string> = { "content-type": r.contentType, "stream-next-offset": encodeOffset(this.#tail()) };
    if (r.closed) h["stream-closed"] = "true";
    if (withTtl && r.ttlSeconds !== null) h["stream-ttl"] = String(r.ttlSeconds);
    if (withTtl && r.expiresAt !== null) h["stream-expires-at"] = r.expiresAt;
    return h;
  }

  // -------------------------------------------------------------------------------------------
  // Fork source

  /**
   * What a new fork copies: bodies from the stream start to `offset` (default: the tail), plus a
   * cut of the message at `offset` when `subOffset` > 0 (bytes for byte streams, messages for
   * JSON streams). Checks everything a fork creation can fail on at the source.
   */
  forkSource(offset: number | null, subOffset: number, now: number): { ok: true; copy: Omit<DsForkCopy, "from"> } | { ok: false; reply: DsReply } {
    const r = this.#live(now);
    if (!r) return { ok: false, reply: errorReply(404, "not_found", "fork source stream not found") };
    if (r.softDeleted) return { ok: false, reply: errorReply(409, "conflict", "fork source was deleted") };
    const { log } = this.#d;
    const head = log.head;
    let end = offset ?? head;
    if (end > head) return { ok: false, reply: errorReply(400, "invalid_field", "Stream-Fork-Offset is past the source's tail") };
    end = Math.max(end, r.base);
    const start = Math.max(r.base, log.earliest);
    if (end < start) return { ok: false, reply: errorReply(410, "offset_trimmed", "fork offset was removed by retention") };
    const json = isJsonContentType(r.contentType);
    const bodies: string[] = [];
    const sizes: number[] = [];
    let bytes = 0;
    const take = (from: number, to: number) => {
      let at = from;
      while (at < to) {
        const rows = log.read(at, Math.min(1000, to - at));
        if (rows.length === 0) break;
        for (const row of rows) {
          bodies.push(row.body);
          const size = row.body.length;
          sizes.push(size);
          bytes += size;
        }
        at += rows.length;
        if (bytes > FORK_COPY_MAX_BYTES) throw new DovetailError("batch_too_large", `a fork copies at most ${FORK_COPY_MAX_BYTES} bytes`);
      }
    };
    take(start, end);
    if (subOffset > 0) {
      const overshoot = errorReply(400, "invalid_field", "Stream-Fork-Sub-Offset is past the next data boundary");
      if (json) {
        if (end + subOffset > head) return { ok: false, reply: overshoot };
        take(end, end + subOffset);
      } else {
        const row = log.read(end, 1)[0];
        if (!row) return { ok: false, reply: overshoot };
        const data = bodyAsBytes(row.body);
        if (subOffset > data.length) return { ok: false, reply: overshoot };
        let binary = "";
        for (const b of data.subarray(0, subOffset)) binary += String.fromCharCode(b);
        bodies.push(`"bytes":"${btoa(binary)}"`);
        sizes.push(subOffset);
      }
    }
    return {
      ok: true,
      copy: { offset: end, subOffset, contentType: r.contentType, ttlSeconds: r.ttlSeconds, expiresAt: r.expiresAt, bodies, sizes },
    };
  }

  // -------------------------------------------------------------------------------------------
  // GET

  read(req: DsReadRequest, now: number): DsReadReply {
    const missing = this.#missing(now);
    if (missing) return { ...missing, next: 0, wait: false, contentType: "" };
    const { log, state } = this.#d;
    const r = state.record!;
    state.touch(now);
    const json = isJsonContentType(r.contentType);
    const tail = this.#tail();
    const contentType = r.contentType;
    const closedAt = (next: number) => r.closed && next >= tail;
    if (req.offset.kind === "now" && !req.live) {
      const headers: Record<string, string> = {
        "content-type": r.contentType,
        "stream-next-offset": encodeOffset(tail),
        "stream-up-to-date": "true",
        "cache-control": "no-store",
      };
      if (r.closed) headers["stream-closed"] = "true";
      return { status: 200, headers, body: json ? "[]" : "", next: tail, wait: false, contentType };
    }
    let start: number;
    if (req.offset.kind === "now") start = log.head;
    else if (req.offset.kind === "start") start = Math.max(r.base, log.earliest);
    else {
      start = Math.max(req.offset.next, r.base);
      if (start > log.head) {
        return { ...errorReply(400, "invalid_field", "offset is past the end of the stream"), next: 0, wait: false, contentType };
      }
      if (start < log.earliest) {
        return {
          ...errorReply(410, "offset_trimmed", `offset was removed by retention; the earliest is ${encodeOffset(log.earliest)}`),
          next: 0,
          wait: false,
          contentType,
        };
      }
    }
    const rows = log.read(start, this.#d.pageMessages, this.#d.pageBytes);
    const next = start + rows.length;
    const upToDate = next >= log.head;
    const closed = upToDate && closedAt(next);
    if (rows.length === 0 && req.live) {
      if (!closed) return { status: 204, headers: {}, next, wait: true, contentType };
      const eof = { "stream-next-offset": encodeOffset(next), "stream-up-to-date": "true", "stream-closed": "true" };
      return { status: 204, headers: eof, next, wait: false, contentType };
    }
    const headers: Record<string, string> = { "content-type": r.contentType, "stream-next-offset": encodeOffset(next) };
    if (upToDate) headers["stream-up-to-date"] = "true";
    if (closed) headers["stream-closed"] = "true";
    const startToken = req.offset.kind === "at" ? encodeOffset(start) : "-1";
    const etag = `"${r.base}:${startToken}:${encodeOffset(next)}${closed ? ":c" : ""}"`;
    headers.etag = etag;
    headers["cache-control"] = rows.length > 0 ? CACHEABLE : "no-store";
    if (req.ifNoneMatch !== null && req.ifNoneMatch === etag) {
      return { status: 304, headers: { etag }, next, wait: false, contentType };
    }
    let body: string | Uint8Array;
    if (json) {
      body = `[${rows.map((row) => bodyAsJson(row.body)).join(",")}]`;
    } else {
      body = concatBytes(rows.map((row) => bodyAsBytes(row.body)));
    }
    return { status: 200, headers, body, next, wait: false, contentType };
  }
}
