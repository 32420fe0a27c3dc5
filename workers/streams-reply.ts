/**
 * Durable Streams replies: how the gateway turns what a topic's stream operations answer
 * (protocol/stream-rpc.ts) into the protocol's HTTP responses, and which protocol headers a
 * stream refusal carries. The topic answers data and throws DovetailError; status codes, headers
 * and offset tokens are written here. A read is the exception: the topic composes it whole
 * (protocol/stream-wait.ts), and {@link readResponse} sends it as it is.
 *
 * Refusals leave through the gateway's one error handler (workers/middleware/errors.ts), which
 * adds {@link streamErrorHeaders} to the usual error body.
 *
 * @example
 * return appendResponse(unwrap(await stub.dsAppend(topic, request))); // 200 or 204, Stream-Next-Offset, ...
 */
import type { DovetailError } from "../protocol/errors.ts";
import type { DsAppendResult, DsCreateResult, DsReadReply, DsStreamInfo } from "../protocol/stream-rpc.ts";
import { encodeOffset, streamEtag } from "../objects/stream-format.ts";

/** The headers that describe a stream: its content type, where it ends, whether it is closed. */
function streamHeaders(stream: DsStreamInfo): Record<string, string> {
  const headers: Record<string, string> = { "content-type": stream.contentType, "stream-next-offset": encodeOffset(stream.next) };
  if (stream.closed) headers["stream-closed"] = "true";
  return headers;
}

/** PUT: `201` with `Location` for a new stream, `200` when the same stream existed. */
export function createResponse(result: DsCreateResult, location: string): Response {
  if (!result.created) return new Response(null, { status: 200, headers: streamHeaders(result.stream) });
  return new Response(null, { status: 201, headers: { ...streamHeaders(result.stream), location } });
}

/**
 * POST: `200` when a producer's append stored new data (protocol 5.2.1), else `204` (a plain
 * append, a duplicate, a close); the producer's epoch and acknowledged seq are echoed.
 */
export function appendResponse(result: DsAppendResult): Response {
  const headers: Record<string, string> = { "stream-next-offset": encodeOffset(result.next) };
  if (result.closed) headers["stream-closed"] = "true";
  if (result.producer) {
    headers["producer-epoch"] = String(result.producer.epoch);
    headers["producer-seq"] = String(result.producer.seq);
  }
  return new Response(null, { status: result.producer && result.count > 0 ? 200 : 204, headers });
}

/** HEAD: the stream's metadata, TTL or expiry, never cached; the ETag of a read of it all. */
export function headResponse(stream: DsStreamInfo): Response {
  const headers = streamHeaders(stream);
  if (stream.ttlSeconds !== null) headers["stream-ttl"] = String(stream.ttlSeconds);
  if (stream.expiresAt !== null) headers["stream-expires-at"] = stream.expiresAt;
  headers["cache-control"] = "no-store";
  headers.etag = streamEtag(stream.base, null, stream.head, stream.closed);
  return new Response(null, { status: 200, headers });
}

/** DELETE. */
export function deleteResponse(): Response {
  return new Response(null, { status: 204 });
}

/**
 * A read the topic composed (or the gateway's own `204` at the end of a long-poll), as a Response;
 * `extra`: headers the gateway adds, e.g. `Stream-Cursor`.
 */
export function readResponse(reply: Pick<DsReadReply, "status" | "headers" | "body">, extra: Record<string, string> = {}): Response {
  const nullBody = reply.status === 204 || reply.status === 304 || reply.body === undefined;
  return new Response(nullBody ? null : reply.body, { status: reply.status, headers: { ...reply.headers, ...extra } });
}

/**
 * The protocol headers a stream refusal carries, from its details: `409` closed stream with
 * `Stream-Closed` and the final `Stream-Next-Offset` (protocol 5.2), `403` fenced producer with
 * the current `Producer-Epoch`, `409` sequence gap with `Producer-Expected-Seq` and
 * `Producer-Received-Seq` (5.2.1). Only refusals of the stream operations carry these details
 * (a publish to a closed topic over /v1/topics is `stream_closed` without `head`), so other
 * routes get no stream headers.
 */
export function streamErrorHeaders(error: DovetailError): Record<string, string> {
  const { head, epoch, expected, received } = error.details;
  switch (error.code) {
    case "stream_closed":
      return head === undefined ? {} : { "stream-next-offset": encodeOffset(head), "stream-closed": "true" };
    case "stale_epoch":
      return epoch === undefined ? {} : { "producer-epoch": String(epoch) };
    case "sequence_gap":
      if (expected === undefined || received === undefined) return {};
      return { "producer-expected-seq": String(expected), "producer-received-seq": String(received) };
    default:
      return {};
  }
}
