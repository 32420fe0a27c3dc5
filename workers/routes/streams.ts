/**
 * /v1/stream/{topic}: the Durable Streams HTTP protocol (docs/streams.md) on every topic.
 *
 * The gateway checks and decodes each request (headers, offsets, JSON flattening, size limits),
 * then one RPC to the topic object does the work (objects/stream-service.ts) and answers data,
 * which workers/streams-reply.ts turns into the protocol's reply; a read comes back composed.
 * Refusals, the gateway's and the topic's, are thrown as DovetailError and shaped by the gateway's
 * one onError, as on every other route. Live reads are held here, in the gateway: a reader at the
 * tail waits on a hibernatable WebSocket to the topic that the topic closes when data arrives, so
 * a waiting reader keeps no topic awake (docs/decisions/008-streams-state-and-waiting.md).
 *
 * Topic names may hold `/` here as they are (`/v1/stream/team-a/jobs`), unlike /v1/topics.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { MAX_DATA_DEPTH } from "../../protocol/frames.ts";
import { decodeUtf8Strict, utf8ByteLength } from "../../objects/bytes.ts";
import { settingsFromEnv } from "../../objects/limits.ts";
import {
  bytesToBase64,
  encodeOffset,
  flattenJsonBody,
  isJsonContentType,
  isTextContentType,
  isValidContentType,
  nextCursor,
  parseOffset,
  parseNonNegativeInt,
  sseData,
} from "../../objects/stream-format.ts";
import { unwrap } from "../../objects/rpc-result.ts";
import type { DsPayload, DsProducer, DsReadReply, ParsedOffset } from "../../protocol/stream-rpc.ts";
import { storedBody } from "../../protocol/stored-message.ts";
import { decodeWaiterReply } from "../../protocol/stream-wait.ts";
import { topicUpgradeRequest } from "../../protocol/topic-request.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { appendResponse, createResponse, deleteResponse, headResponse, readResponse } from "../streams-reply.ts";
import { checkedTopic, may, permit, type TopicOf } from "../middleware/permissions.ts";
import { topicExists } from "../topic-exists.ts";
import { topicStub } from "../topic-stub.ts";

/** Where the routes are mounted; `Stream-Forked-From` may name a source with this prefix. */
export const STREAM_ROUTE_PREFIX = "/v1/stream/";
/** How long a long-poll waits for data before answering 204 (override: `STREAM_LONG_POLL_MS`). */
export const DEFAULT_LONG_POLL_MS = 20_000;
/** An SSE response ends after this long so CDNs can collapse readers (protocol 10.2). */
export const SSE_MAX_MS = 60_000;

/** Optional Worker variables read by these routes. */
interface StreamsEnv {
  STREAM_LONG_POLL_MS?: string;
}

/** The topic a stream path (after {@link STREAM_ROUTE_PREFIX}) names; throws the 400/404 refusal. */
function streamTopic(path: string): string {
  let topic: string;
  try {
    topic = decodeURIComponent(path);
  } catch {
    throw new DovetailError("invalid_topic", "stream path is not valid percent-encoding");
  }
  if (topic === "__ds" || topic.startsWith("__ds/")) {
    throw new DovetailError("not_found", "__ds is reserved for the Durable Streams control APIs (docs/streams.md, Subscriptions); no such API");
  }
  return checkedTopic(topic);
}

/** The stream route's topic, for permit(). */
const streamTopicOf: TopicOf = (c) => streamTopic(new URL(c.req.url).pathname.slice(STREAM_ROUTE_PREFIX.length));

/** The source a `Stream-Forked-From` header names (a path, with or without the route prefix). */
function forkSourceTopic(forkedFrom: string): string {
  return streamTopic(forkedFrom.startsWith(STREAM_ROUTE_PREFIX) ? forkedFrom.slice(STREAM_ROUTE_PREFIX.length) : forkedFrom.replace(/^\/+/, ""));
}

/** Reads of a stream nobody created are answered 404 here, without waking a topic object. */
const existingStream: MiddlewareHandler<GatewayEnv> = async function existingStream(c, next) {
  const topic = c.get("topic");
  if (!(await topicExists(c.env, c.get("tenant"), topic))) throw new DovetailError("not_found", `no stream ${topic}`);
  await next();
};

/** A fork copies its source: creating one also needs subscribe on the source. */
const permitForkSource: MiddlewareHandler<GatewayEnv> = async function permitForkSource(c, next) {
  const forkedFrom = header(c, "Stream-Forked-From");
  if (c.req.method === "PUT" && forkedFrom !== undefined) {
    const source = forkSourceTopic(forkedFrom);
    if (!may(c, "subscribe", source)) throw new DovetailError("forbidden", `this credential may not fork ${source} (it needs subscribe on the source)`);
  }
  await next();
};

function header(c: Context<GatewayEnv>, name: string): string | undefined {
  return c.req.header(name) ?? undefined;
}

/** `Stream-Closed` counts only when it is exactly `true`, any case (protocol 4.1). */
function closedHeader(c: Context<GatewayEnv>): boolean {
  return header(c, "Stream-Closed")?.toLowerCase() === "true";
}

/** Encode an append body as messages: one `data` per JSON value, or one `bytes` message. Throws the refusal. */
function encodePayload(c: Context<GatewayEnv>, body: Uint8Array, contentType: string, forCreate: boolean): DsPayload | null {
  if (body.length === 0) return null;
  const { limits } = settingsFromEnv(c.env);
  const json = isJsonContentType(contentType);
  if (json) {
    const text = decodeUtf8Strict(body);
    if (text === null) throw new DovetailError("invalid_utf8", "a JSON body must be valid UTF-8");
    const flat = flattenJsonBody(text);
    if ("error" in flat) {
      if (flat.error === "empty_array" && forCreate) return null;
      if (flat.error === "too_deep") throw new DovetailError("too_deep", `a JSON value nests more than ${MAX_DATA_DEPTH} levels of arrays and objects`);
      throw new DovetailError("invalid_field", flat.error === "empty_array" ? "an append may not be an empty JSON array" : "body is not valid JSON");
    }
    // Each text is JSON.stringify output: stored as the message's `data` as it is.
    const sizes = new Uint32Array(flat.messages.length);
    let total = 0;
    for (let i = 0; i < flat.messages.length; i++) {
      const size = utf8ByteLength(flat.messages[i]!);
      if (size > limits.maxMessageBytes) {
        throw new DovetailError("message_too_large", `message ${i} is ${size} bytes; the limit is ${limits.maxMessageBytes}`);
      }
      sizes[i] = size;
      total += size;
    }
    if (total > limits.maxBatchBytes) throw new DovetailError("batch_too_large", `an append may carry at most ${limits.maxBatchBytes} bytes`);
    return { json, bodies: flat.messages.map((data) => storedBody({ data })).join("\n"), sizes };
  }
  if (body.length > limits.maxMessageBytes) {
    throw new DovetailError("message_too_large", `an append is ${body.length} bytes; the limit is ${limits.maxMessageBytes}`);
  }
  return { json, bodies: storedBody({ bytes: bytesToBase64(body) }), sizes: Uint32Array.of(body.length) };
}

/**
 * Read from `after`, waiting up to `timeoutMs` when there is nothing to read yet. Resolves with
 * the read (at once, when there was something to say, or the one the topic sent on waking us),
 * true when woken without one (read again), false on timeout. The topic holds our socket with
 * the hibernation API and closes it on the commit that passes `after`; it may sleep meanwhile.
 */
async function waitForData(stub: ReturnType<typeof topicStub>, topic: string, after: number, timeoutMs: number): Promise<DsReadReply | boolean> {
  if (timeoutMs <= 0) return false;
  const res = await stub.fetch(topicUpgradeRequest({ kind: "stream-wait", topic, after }));
  const ws = res.webSocket;
  if (!ws) return res.status === 200 ? (decodeWaiterReply(await res.text()) ?? true) : true;
  ws.accept();
  return new Promise<DsReadReply | boolean>((resolve) => {
    const finish = (changed: DsReadReply | boolean) => {
      clearTimeout(timer);
      try {
        ws.close(1000, changed ? "done" : "timeout");
      } catch {
        // Already closed by the topic.
      }
      resolve(changed);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    ws.addEventListener("close", () => finish(true));
    ws.addEventListener("error", () => finish(true));
    ws.addEventListener("message", (e) => finish(decodeWaiterReply(e.data) ?? true));
  });
}

/** 413 before reading a body whose declared length is over twice the batch limit (JSON escaping can inflate a batch). */
function checkBodySize(c: Context<GatewayEnv>): void {
  const declared = Number(header(c, "Content-Length") ?? "0");
  const { limits } = settingsFromEnv(c.env);
  if (declared <= limits.maxBatchBytes * 2) return;
  throw new DovetailError("batch_too_large", `request body is ${declared} bytes; the limit is ${limits.maxBatchBytes}`);
}

function longPollMs(c: Context<GatewayEnv>): number {
  const raw = (c.env as unknown as StreamsEnv).STREAM_LONG_POLL_MS;
  const n = raw === undefined || raw === "" ? DEFAULT_LONG_POLL_MS : Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`STREAM_LONG_POLL_MS must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

export function streamRoutes(): Hono<GatewayEnv> {
  // CORS, preflights included, is the gateway's (workers/middleware/cors.ts).
  const streams = new Hono<GatewayEnv>();

  // Reading needs subscribe; creating, appending, closing and deleting need publish.
  streams.on(["GET", "HEAD"], "/*", permit("subscribe", streamTopicOf), existingStream, handle);
  streams.on(["PUT", "POST", "DELETE"], "/*", permit("publish", streamTopicOf), permitForkSource, handle);
  return streams;
}

async function handle(c: Context<GatewayEnv>): Promise<Response> {
  const method = c.req.method;
  const url = new URL(c.req.url);
  const topic = c.get("topic");
  const stub = topicStub(c.env, c.get("tenant"), topic);
  switch (method) {
    case "PUT":
      return create(c, topic, stub);
    case "POST":
      return append(c, topic, stub);
    case "HEAD":
      return headResponse(unwrap(await stub.dsHead(topic)));
    case "DELETE": {
      const { releaseSource } = unwrap(await stub.dsDelete(topic));
      // Cascade: a deleted fork releases its source, which may go away and release its own.
      let source = releaseSource;
      for (let hops = 0; source !== null && hops < 100; hops++) {
        source = await topicStub(c.env, c.get("tenant"), source).dsForkRef(source, -1);
      }
      return deleteResponse();
    }
    default:
      return read(c, topic, stub, url);
  }
}

async function create(c: Context<GatewayEnv>, topic: string, stub: ReturnType<typeof topicStub>): Promise<Response> {
  const rawType = header(c, "Content-Type");
  let contentType = rawType !== undefined && isValidContentType(rawType) ? rawType.trim() : null;
  const ttlRaw = header(c, "Stream-TTL");
  const expiresRaw = header(c, "Stream-Expires-At");
  if (ttlRaw !== undefined && expiresRaw !== undefined) throw new DovetailError("invalid_field", "send Stream-TTL or Stream-Expires-At, not both");
  const ttlSeconds = ttlRaw === undefined ? null : parseNonNegativeInt(ttlRaw);
  if (ttlRaw !== undefined && ttlSeconds === null) throw new DovetailError("invalid_field", "Stream-TTL: expected a non-negative integer of seconds");
  if (expiresRaw !== undefined && !Number.isFinite(Date.parse(expiresRaw))) {
    throw new DovetailError("invalid_field", "Stream-Expires-At: expected an RFC 3339 timestamp");
  }
  const forkedFrom = header(c, "Stream-Forked-From");
  const forkOffsetRaw = header(c, "Stream-Fork-Offset");
  const subRaw = c.req.raw.headers.has("Stream-Fork-Sub-Offset") ? (c.req.raw.headers.get("Stream-Fork-Sub-Offset") ?? "") : undefined;
  if (forkedFrom === undefined && (forkOffsetRaw !== undefined || subRaw !== undefined)) {
    throw new DovetailError("invalid_field", "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From");
  }
  let forkOffset: number | null = null;
  if (forkOffsetRaw !== undefined) {
    const parsed = parseOffset(forkOffsetRaw);
    if (parsed?.kind !== "at") throw new DovetailError("invalid_field", "Stream-Fork-Offset: not an offset of this server");
    forkOffset = parsed.next;
  }
  const subOffset = subRaw === undefined ? 0 : parseNonNegativeInt(subRaw);
  if (subOffset === null) throw new DovetailError("invalid_field", "Stream-Fork-Sub-Offset: expected a non-negative integer");
  if (subOffset > 0 && forkOffset === null) throw new DovetailError("invalid_field", "Stream-Fork-Sub-Offset needs Stream-Fork-Offset");
  checkBodySize(c);
  const body = new Uint8Array(await c.req.arrayBuffer());

  let fork = null;
  let source: { topic: string; stub: ReturnType<typeof topicStub> } | null = null;
  if (forkedFrom !== undefined) {
    const sourceTopic = forkSourceTopic(forkedFrom);
    if (sourceTopic === topic) throw new DovetailError("conflict", "a stream cannot fork itself");
    source = { topic: sourceTopic, stub: topicStub(c.env, c.get("tenant"), sourceTopic) };
    const copy = unwrap(await source.stub.dsForkSource(sourceTopic, forkOffset, subOffset));
    fork = { ...copy, from: sourceTopic };
    contentType ??= copy.contentType;
  }
  const payload = encodePayload(c, body, contentType ?? "application/octet-stream", true);
  const result = unwrap(
    await stub.dsCreate(topic, {
      contentType,
      ttlSeconds,
      expiresAt: expiresRaw ?? null,
      closed: closedHeader(c),
      payload,
      fork,
    }),
  );
  if (result.created && source) await source.stub.dsForkRef(source.topic, 1);
  return createResponse(result, c.req.url.split("?")[0]!);
}

async function append(c: Context<GatewayEnv>, topic: string, stub: ReturnType<typeof topicStub>): Promise<Response> {
  const close = closedHeader(c);
  const pid = header(c, "Producer-Id");
  const pepoch = header(c, "Producer-Epoch");
  const pseq = header(c, "Producer-Seq");
  let producer: DsProducer | null = null;
  if (pid !== undefined || pepoch !== undefined || pseq !== undefined) {
    if (pid === undefined || pepoch === undefined || pseq === undefined) {
      throw new DovetailError("invalid_field", "Producer-Id, Producer-Epoch and Producer-Seq go together");
    }
    const epoch = parseNonNegativeInt(pepoch);
    const seq = parseNonNegativeInt(pseq);
    if (pid === "" || epoch === null || seq === null) throw new DovetailError("invalid_field", "invalid producer headers");
    producer = { id: pid, epoch, seq };
  }
  checkBodySize(c);
  const body = new Uint8Array(await c.req.arrayBuffer());
  if (body.length === 0 && !close) throw new DovetailError("invalid_field", "an append needs a body (or Stream-Closed: true)");
  const rawType = header(c, "Content-Type");
  if (body.length > 0 && (rawType === undefined || !isValidContentType(rawType))) {
    throw new DovetailError("invalid_field", "an append with a body needs a Content-Type");
  }
  const payload = encodePayload(c, body, rawType ?? "application/octet-stream", false);
  const result = unwrap(
    await stub.dsAppend(topic, {
      contentType: body.length > 0 ? rawType!.trim() : null,
      payload,
      close,
      streamSeq: header(c, "Stream-Seq") ?? null,
      producer,
    }),
  );
  return appendResponse(result);
}

async function read(c: Context<GatewayEnv>, topic: string, stub: ReturnType<typeof topicStub>, url: URL): Promise<Response> {
  const offsets = url.searchParams.getAll("offset");
  if (offsets.length > 1) throw new DovetailError("invalid_field", "give one offset");
  let offset: ParsedOffset = { kind: "start" };
  if (offsets.length === 1) {
    const parsed = parseOffset(offsets[0]!);
    if (!parsed) throw new DovetailError("invalid_field", "offset: not an offset of this server, -1 or now");
    offset = parsed;
  }
  const live = url.searchParams.get("live");
  const cursor = url.searchParams.get("cursor") ?? undefined;
  if ((live === "long-poll" || live === "sse") && offsets.length === 0) {
    throw new DovetailError("invalid_field", `live=${live} needs an offset`);
  }
  if (live === "sse") return sse(c, topic, stub, offset, cursor);
  if (live !== "long-poll") {
    return readResponse(await stub.dsRead(topic, { offset, live: false, ifNoneMatch: header(c, "If-None-Match") ?? null }));
  }
  const deadline = Date.now() + longPollMs(c);
  // A reader at an offset (every poll after the first) goes straight to the wait, which answers
  // the read itself when there is something: one call to the topic per poll, not two.
  let next = offset.kind === "at" ? offset.next : -1;
  let reply: DsReadReply | null = next >= 0 ? null : await stub.dsRead(topic, { offset, live: true, ifNoneMatch: null });
  while (reply === null || reply.wait) {
    if (reply) next = reply.next;
    const changed = await waitForData(stub, topic, next, deadline - Date.now());
    if (!changed) {
      return readResponse({
        status: 204,
        headers: { "stream-next-offset": encodeOffset(next), "stream-up-to-date": "true", "stream-cursor": nextCursor(cursor) },
      });
    }
    reply = changed !== true ? changed : await stub.dsRead(topic, { offset: { kind: "at", next }, live: true, ifNoneMatch: null });
  }
  const closed = reply.headers["stream-closed"] === "true";
  return readResponse(reply, reply.status < 300 && !closed ? { "stream-cursor": nextCursor(cursor) } : {});
}

/** Server-sent events: one `data` event per page read, each followed by a `control` event. */
async function sse(
  c: Context<GatewayEnv>,
  topic: string,
  stub: ReturnType<typeof topicStub>,
  start: ParsedOffset,
  cursor: string | undefined,
): Promise<Response> {
  const first = await stub.dsRead(topic, { offset: start, live: true, ifNoneMatch: null });
  if (first.status >= 400) return readResponse(first);
  const contentType = first.contentType;
  const base64 = !isTextContentType(contentType);
  const waitMs = longPollMs(c);
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const utf8 = new TextEncoder();
  const text = new TextDecoder();
  const deadline = Date.now() + SSE_MAX_MS;
  const control = (next: number, upToDate: boolean, closed: boolean): string => {
    const body: Record<string, unknown> = { streamNextOffset: encodeOffset(next) };
    if (closed) body.streamClosed = true;
    else {
      body.streamCursor = nextCursor(cursor);
      if (upToDate) body.upToDate = true;
    }
    return `event: control\n${sseData(JSON.stringify(body))}`;
  };
  const pump = async () => {
    let reply: DsReadReply = first;
    let announced = -1; // offset of the last upToDate control sent
    for (;;) {
      if (reply.status >= 400) break;
      if (reply.wait) {
        if (announced !== reply.next) {
          await writer.write(utf8.encode(control(reply.next, true, false)));
          announced = reply.next;
        }
        const left = Math.min(waitMs, deadline - Date.now());
        if (left <= 0) break;
        const changed = await waitForData(stub, topic, reply.next, left);
        if (!changed) {
          if (Date.now() >= deadline) break;
          await writer.write(utf8.encode(control(reply.next, true, false)));
          continue;
        }
        if (changed !== true) {
          reply = changed;
          continue;
        }
      } else {
        const closed = reply.headers["stream-closed"] === "true";
        const upToDate = reply.headers["stream-up-to-date"] === "true";
        let events = "";
        if (reply.status === 200 && reply.body !== undefined) {
          const payload = typeof reply.body === "string" ? reply.body : base64 ? bytesToBase64(reply.body) : text.decode(reply.body);
          const empty = typeof reply.body === "string" ? reply.body === "[]" || reply.body === "" : reply.body.length === 0;
          if (!empty) events = `event: data\n${sseData(payload)}`;
        }
        // One write per data + control pair, so a reader never sees a data event without its control.
        await writer.write(utf8.encode(events + control(reply.next, upToDate, closed)));
        if (upToDate) announced = reply.next;
        if (closed) break;
        if (Date.now() >= deadline) break;
      }
      reply = await stub.dsRead(topic, { offset: { kind: "at", next: reply.next }, live: true, ifNoneMatch: null });
    }
  };
  c.executionCtx.waitUntil(
    pump()
      .catch(() => {
        // The reader went away (write failed) or the topic failed; end the response either way.
      })
      .finally(() => writer.close().catch(() => {})),
  );
  const headers: Record<string, string> = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
  };
  if (base64) headers["stream-sse-data-encoding"] = "base64";
  return new Response(readable, { status: 200, headers });
}
