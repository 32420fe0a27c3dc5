/**
 * StreamService: the Durable Streams operations of one topic, run inside its Topic object over
 * the topic's own log and commit queue (so HTTP and WebSocket share offsets and order) and the
 * StreamState tables.
 *
 * Create, append, HEAD, delete and the fork source answer with data (protocol/stream-rpc.ts) and
 * refuse by throwing a DovetailError whose details carry what the protocol's error headers need
 * (`stream_closed` + the final offset, `stale_epoch` + the current epoch, `sequence_gap` + the
 * expected and received seq); the gateway turns both into HTTP (workers/streams-reply.ts). A read
 * is composed whole here, because it may reach the gateway over a waiter socket instead of RPC
 * (protocol/stream-wait.ts).
 */
import { DovetailError } from "../protocol/errors.ts";
import type {
  DsAppendRequest,
  DsAppendResult,
  DsCreateRequest,
  DsCreateResult,
  DsDeleteResult,
  DsForkSource,
  DsPayload,
  DsReadReply,
  DsReadRequest,
  DsStreamInfo,
} from "../protocol/stream-rpc.ts";
import type { PublishResult } from "./commit-queue.ts";
import type { PreparedMessage, TopicLog } from "./log.ts";
import { bodyAsBytes, bodyAsJson } from "../protocol/stored-message.ts";
import { concatBytes, encodeOffset, isJsonContentType, normalizeContentType, streamEtag } from "./stream-format.ts";
import type { StreamRecord, StreamState } from "./stream-state.ts";

/** The prepared messages of a payload (its bodies are joined by `\n`, see {@link DsPayload}). */
export function payloadMessages(payload: DsPayload): PreparedMessage[] {
  const bodies = payload.bodies.split("\n");
  const out: PreparedMessage[] = new Array(bodies.length);
  for (let i = 0; i < bodies.length; i++) out[i] = { body: bodies[i]!, size: payload.sizes[i]! };
  return out;
}

/** Largest copy a fork makes of its source (an RPC message is limited to 32 MiB). */
export const FORK_COPY_MAX_BYTES = 16 * 1024 * 1024;
/** Content type of a topic created over WebSocket, seen over HTTP streams. */
export const IMPLICIT_CONTENT_TYPE = "application/json";

const CACHEABLE = "private, max-age=60, stale-while-revalidate=300";

/** A memory topic stores nothing, so it is no Durable Stream (protocol/durability.ts). */
function notStored(): DovetailError {
  return new DovetailError("not_stored", "this topic's durability is memory: it stores no messages, so it cannot be read or written as a Durable Stream");
}

/**
 * A read's refusal as a read reply, which a waiting gateway may also receive over its socket
 * (reads are composed here, see the file comment): the error body with its code's status.
 */
function readRefusal(error: DovetailError, contentType: string): DsReadReply {
  return {
    status: error.status,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(error.toBody()),
    next: 0,
    wait: false,
    contentType,
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

  /** Why there is no live stream to work on (none, or deleted while forks read it), or null. */
  #refusal(now: number): DovetailError | null {
    if (this.#d.log.durability === "memory") return notStored();
    const r = this.#live(now);
    if (!r) return new DovetailError("not_found", "stream not found");
    if (r.softDeleted) return new DovetailError("stream_gone", "stream was deleted; its forks still read its data");
    return null;
  }

  /** The live stream; throws `not_found` or `stream_gone`. */
  #existing(now: number): StreamRecord {
    const refusal = this.#refusal(now);
    if (refusal) throw refusal;
    return this.#d.state.record!;
  }

  /** The stream as HEAD and PUT describe it. */
  #info(r: StreamRecord): DsStreamInfo {
    return {
      contentType: r.contentType,
      next: this.#tail(),
      closed: r.closed,
      ttlSeconds: r.ttlSeconds,
      expiresAt: r.expiresAt,
      base: r.base,
      head: this.#d.log.head,
    };
  }

  // -------------------------------------------------------------------------------------------
  // PUT

  async create(req: DsCreateRequest, now: number): Promise<DsCreateResult> {
    if (this.#d.log.durability === "memory") throw notStored();
    const { state } = this.#d;
    const existing = this.#live(now);
    if (existing) {
      if (existing.softDeleted) throw new DovetailError("conflict", "a deleted stream with live forks still holds this path");
      const wantType = req.contentType ?? req.fork?.contentType ?? "application/octet-stream";
      const same =
        normalizeContentType(existing.contentType) === normalizeContentType(wantType) &&
        existing.ttlSeconds === (req.ttlSeconds ?? (req.fork && !req.expiresAt ? req.fork.ttlSeconds : null)) &&
        existing.expiresAt === (req.expiresAt ?? (req.fork && req.ttlSeconds === null ? req.fork.expiresAt : null)) &&
        existing.closed === req.closed &&
        existing.forkedFrom === (req.fork?.from ?? null) &&
        (req.fork === null || (existing.forkOffset === req.fork.offset && (existing.forkSubOffset ?? 0) === req.fork.subOffset));
      if (!same) throw new DovetailError("conflict", "stream exists with a different configuration");
      return { created: false, stream: this.#info(existing) };
    }
    const contentType = req.fork ? (req.contentType ?? req.fork.contentType) : (req.contentType ?? "application/octet-stream");
    if (req.fork && normalizeContentType(contentType) !== normalizeContentType(req.fork.contentType)) {
      throw new DovetailError("conflict", `fork content type ${contentType} differs from the source's ${req.fork.contentType}`);
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
    return { created: true, stream: this.#info(record) };
  }

  // -------------------------------------------------------------------------------------------
  // POST

  async append(req: DsAppendRequest, now: number): Promise<DsAppendResult> {
    const r = this.#existing(now);
    const { state } = this.#d;
    const p = req.producer;
    const check = p ? state.checkProducer(p.id, p.epoch, p.seq, now) : null;
    if (check?.status === "stale_epoch") {
      throw new DovetailError("stale_epoch", `producer epoch ${p!.epoch} is older than ${check.currentEpoch}`, { epoch: check.currentEpoch });
    }
    if (r.closed) {
      const tail = this.#tail();
      const by = r.closedBy;
      // The retry of the append that closed the stream, or another close: answered as done.
      if (p && by && by.id === p.id && by.epoch === p.epoch && by.seq === p.seq) {
        return { next: tail, closed: true, count: 0, producer: { epoch: p.epoch, seq: p.seq } };
      }
      if (req.close && !req.payload) return { next: tail, closed: true, count: 0, producer: null };
      throw new DovetailError("stream_closed", "stream is closed", { head: tail });
    }
    if (req.payload && req.contentType !== null && normalizeContentType(req.contentType) !== normalizeContentType(r.contentType)) {
      throw new DovetailError("conflict", `content type ${req.contentType} does not match the stream's ${r.contentType}`);
    }
    if (check) {
      switch (check.status) {
        case "duplicate":
          return { next: this.#tail(), closed: false, count: 0, producer: { epoch: p!.epoch, seq: check.lastSeq } };
        case "invalid_epoch_seq":
          throw new DovetailError("invalid_field", "a new producer epoch must start at Producer-Seq 0");
        case "gap":
          throw new DovetailError("sequence_gap", `producer sent seq ${check.received}; expected ${check.expected}`, {
            expected: check.expected,
            received: check.received,
          });
      }
    }
    if (req.streamSeq !== null && r.streamSeq !== null && req.streamSeq <= r.streamSeq) {
      throw new DovetailError("conflict", `Stream-Seq ${req.streamSeq} is not after ${r.streamSeq}`);
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
    let next: number;
    let count = 0;
    if (req.payload) {
      let result: PublishResult;
      try {
        result = await this.#submit(payloadMessages(req.payload), req.close);
      } catch (error) {
        // A refused commit (`storage_full`: nothing stored) leaves the stream as it was.
        state.discardPending();
        throw error;
      }
      next = result.offset + result.count;
      count = result.count;
    } else {
      // Close-only: nothing to commit with it, so write it now and wake every reader.
      state.persist();
      next = this.#tail();
    }
    if (req.close) this.#d.wakeAll();
    return { next, closed: req.close, count, producer: p ? { epoch: p.epoch, seq: p.seq } : null };
  }

  // -------------------------------------------------------------------------------------------
  // HEAD, DELETE

  head(now: number): DsStreamInfo {
    return this.#info(this.#existing(now));
  }

  /** Delete; answers the source to release when this was a fork. */
  delete(now: number): DsDeleteResult {
    const r = this.#existing(now);
    if (r.refs > 0) {
      this.#d.state.update({ softDeleted: true });
      this.#d.state.flushRecord();
    } else {
      this.#d.state.delete(this.#tail());
    }
    this.#d.wakeAll();
    return { releaseSource: r.refs > 0 ? null : r.forkedFrom };
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

  // -------------------------------------------------------------------------------------------
  // Fork source

  /**
   * What a new fork copies: bodies from the stream start to `offset` (default: the tail), plus a
   * cut of the message at `offset` when `subOffset` > 0 (bytes for byte streams, messages for
   * JSON streams). Checks everything a fork creation can fail on at the source, and throws it.
   */
  forkSource(offset: number | null, subOffset: number, now: number): DsForkSource {
    const r = this.#live(now);
    if (!r) throw new DovetailError("not_found", "fork source stream not found");
    if (r.softDeleted) throw new DovetailError("conflict", "fork source was deleted");
    const { log } = this.#d;
    const head = log.head;
    let end = offset ?? head;
    if (end > head) throw new DovetailError("invalid_field", "Stream-Fork-Offset is past the source's tail");
    end = Math.max(end, r.base);
    const start = Math.max(r.base, log.earliest);
    if (end < start) throw new DovetailError("offset_trimmed", "fork offset was removed by retention");
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
      const overshoot = () => new DovetailError("invalid_field", "Stream-Fork-Sub-Offset is past the next data boundary");
      if (json) {
        if (end + subOffset > head) throw overshoot();
        take(end, end + subOffset);
      } else {
        const row = log.read(end, 1)[0];
        if (!row) throw overshoot();
        const data = bodyAsBytes(row.body);
        if (subOffset > data.length) throw overshoot();
        let binary = "";
        for (const b of data.subarray(0, subOffset)) binary += String.fromCharCode(b);
        bodies.push(`"bytes":"${btoa(binary)}"`);
        sizes.push(subOffset);
      }
    }
    return { offset: end, subOffset, contentType: r.contentType, ttlSeconds: r.ttlSeconds, expiresAt: r.expiresAt, bodies, sizes };
  }

  // -------------------------------------------------------------------------------------------
  // GET

  read(req: DsReadRequest, now: number): DsReadReply {
    const refusal = this.#refusal(now);
    if (refusal) return readRefusal(refusal, "");
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
        return readRefusal(new DovetailError("invalid_field", "offset is past the end of the stream"), contentType);
      }
      if (start < log.earliest) {
        return readRefusal(new DovetailError("offset_trimmed", `offset was removed by retention; the earliest is ${encodeOffset(log.earliest)}`), contentType);
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
    const etag = streamEtag(r.base, req.offset.kind === "at" ? start : null, next, closed);
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
