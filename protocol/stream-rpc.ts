/**
 * The Durable Streams operations between the gateway and a topic object (the Topic's `ds*` RPC
 * methods): what the gateway sends, already checked and encoded, and what the topic answers.
 *
 * Answers are data: offsets as Dovetail offsets (numbers), flags, the producer state. The gateway
 * writes the protocol's status codes, headers and offset tokens from them
 * (workers/streams-reply.ts). A refusal is not an answer: the topic throws a DovetailError whose
 * code gives the status and whose details give what the protocol's error headers need
 * (`stream_closed` + `head`, `stale_epoch` + `epoch`, `sequence_gap` + `expected`/`received`),
 * and it crosses RPC as every refusal does (objects/rpc-result.ts).
 *
 * Reads are the exception: the answer to a read may reach the gateway over a waiter socket
 * instead of the RPC, so the topic composes it whole ({@link DsReadReply}, protocol/stream-wait.ts).
 *
 * @example
 * const { created, stream } = unwrap(await stub.dsCreate(topic, request));
 * // created: false when the same stream existed; stream.next: where the next message will go
 */
import type { StreamReadReply } from "./stream-wait.ts";

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

/** An idempotent producer's headers (`Producer-Id`, `Producer-Epoch`, `Producer-Seq`). */
export interface DsProducer {
  id: string;
  epoch: number;
  seq: number;
}

/** PUT: create a stream (or confirm one with the same configuration). */
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

/** What a fork source answers: the copy, without the source's name (the gateway knows it). */
export type DsForkSource = Omit<DsForkCopy, "from">;

/** POST: append (and/or close). */
export interface DsAppendRequest {
  contentType: string | null;
  payload: DsPayload | null;
  close: boolean;
  streamSeq: string | null;
  producer: DsProducer | null;
}

/** A parsed `offset` query value: the stream start, the tail, or a Dovetail offset. */
export type ParsedOffset = { kind: "start" } | { kind: "now" } | { kind: "at"; next: number };

/** GET: read from an offset. */
export interface DsReadRequest {
  offset: ParsedOffset;
  /** The request waits for data (long-poll/SSE); `offset=now` then means "from the tail". */
  live: boolean;
  ifNoneMatch: string | null;
}

/** A read as the topic composed it (protocol/stream-wait.ts carries it to a waiting gateway). */
export type DsReadReply = StreamReadReply;

/** A live stream, as HEAD and PUT describe it. */
export interface DsStreamInfo {
  contentType: string;
  /** Where the next message will go, counting accepted messages not yet committed (`Stream-Next-Offset`). */
  next: number;
  closed: boolean;
  ttlSeconds: number | null;
  /** RFC 3339 text as given at creation. */
  expiresAt: string | null;
  /** First offset of this incarnation of the stream (a DELETE then PUT starts a new one); part of the ETag. */
  base: number;
  /** Next offset to be committed (without messages still waiting); part of HEAD's ETag. */
  head: number;
}

/** PUT's answer: `created` is false when the same stream already existed (`200`, not `201`). */
export interface DsCreateResult {
  created: boolean;
  stream: DsStreamInfo;
}

/** POST's answer. */
export interface DsAppendResult {
  /** Where the stream now ends (`Stream-Next-Offset`). */
  next: number;
  /** The stream is closed (by this request, or already, for a retried close). */
  closed: boolean;
  /** Messages this request stored: 0 for a duplicate or a close without a body. */
  count: number;
  /** The producer's epoch and the sequence number this answer acknowledges; null without a producer. */
  producer: { epoch: number; seq: number } | null;
}

/** DELETE's answer: the source to release when the deleted stream was a fork (and now goes). */
export interface DsDeleteResult {
  releaseSource: string | null;
}
