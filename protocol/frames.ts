/**
 * The Dovetail wire protocol, version 1: the one definition both the topic object and the
 * clients import. docs/protocol.md describes the same frames for people writing other clients.
 *
 * Transport: one WebSocket per topic (`GET /v1/topics/{topic}/ws`), JSON text frames, each an
 * object with a `type`. Compatibility rule for every frame: receivers ignore fields they do not
 * know, so fields may be added in a minor revision; a field's meaning never changes within v1.
 */
import type { ClientFrame } from "./frame-schemas.ts";
import { DovetailError, type ErrorCode, type ErrorDetails } from "./errors.ts";
import type { ConsumingFrame, JobsFrame, SettledFrame } from "./groups.ts";
import type { Durability } from "./durability.ts";
import type { MatchingFrame, PatternWelcomeFrame, UnmatchedFrame } from "./patterns.ts";
import type { IncomingRequestFrame, IncomingRequestsFrame, RepliesToRequesterFrame, ReplyToRequesterFrame, ServingFrame } from "./requests.ts";

export const PROTOCOL_VERSION = 1;

/** Client → server frame types. */
export const CLIENT_FRAME = {
  publish: "publish",
  subscribe: "subscribe",
  credit: "credit",
  unsubscribe: "unsubscribe",
  /** Consumer groups (protocol/groups.ts). */
  consume: "consume",
  settle: "settle",
  /** Request/reply (protocol/requests.ts). */
  serve: "serve",
  request: "request",
  reply: "reply",
} as const;

/** Server → client frame types. */
export const SERVER_FRAME = {
  welcome: "welcome",
  ack: "ack",
  /** Coalesced acks, only on sockets opened with `?acks=batch` (see {@link AcksFrame}). */
  acks: "acks",
  subscribed: "subscribed",
  messages: "messages",
  unsubscribed: "unsubscribed",
  /** Consumer groups (protocol/groups.ts). */
  consuming: "consuming",
  jobs: "jobs",
  settled: "settled",
  /** Request/reply (protocol/requests.ts): `request` goes to a responder, `reply` to the requester. */
  serving: "serving",
  request: "request",
  reply: "reply",
  requests: "requests",
  replies: "replies",
  error: "error",
} as const;

/**
 * Keep-alive: a client may send exactly this text at any time and gets {@link PONG_TEXT} back.
 * The runtime answers it without waking a hibernated topic.
 */
export const PING_TEXT = '{"type":"ping"}';
export const PONG_TEXT = '{"type":"pong"}';

/** Default credit a `subscribe` frame grants when it names none. */
export const DEFAULT_CREDIT = 1000;
/** Largest credit a single frame may grant (the total is capped at the same number). */
export const MAX_CREDIT = 1_000_000;
export const MAX_KEY_LENGTH = 256;
export const MAX_HEADERS = 64;
export const MAX_HEADER_NAME_LENGTH = 128;
export const MAX_HEADER_VALUE_LENGTH = 4096;
export const MAX_PRODUCER_ID_LENGTH = 128;
/** Highest message priority (consumer groups serve higher priorities first; 0 is the default). */
export const MAX_PRIORITY = 9;
/** Longest relative message TTL: one year. */
export const MAX_TTL_MS = 365 * 24 * 60 * 60 * 1000;
/**
 * Deepest nesting of arrays and objects in a message's `data` (`{"a":[1]}` is 2 levels). Deeper
 * values are refused with `too_deep` on every path (WebSocket, HTTP, Durable Streams JSON appends,
 * and by the SDK before sending), checked without recursion, so no depth can overflow a stack.
 */
export const MAX_DATA_DEPTH = 128;

/**
 * Does `value` nest arrays and objects more than `max` levels deep? Walks with its own stack
 * (no recursion) and stops at the first path deeper than `max`.
 *
 * @example
 * nestsDeeperThan({ a: [1] }, 1) // true
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  const values: object[] = [value];
  const depths: number[] = [1];
  while (values.length > 0) {
    const v = values.pop()!;
    const depth = depths.pop()!;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/** The `too_deep` refusal for message `index`. */
export function tooDeepError(index: number): DovetailError {
  return new DovetailError("too_deep", `messages.${index}.data nests more than ${MAX_DATA_DEPTH} levels of arrays and objects`);
}

// ---------------------------------------------------------------------------------------------
// Client → server frames

// Defined by their zod schemas in frame-schemas.ts, beside the server's parser, so that this
// module builds no schema and clients never load zod (decision 025). Their types:
export type { ClientFrame, CreditFrame, ProducerStamp, PublishFrame, PublishMessage, SubscribeFrame, UnsubscribeFrame } from "./frame-schemas.ts";
export type { SubscribeFrom } from "./subscribe-from.ts";

// ---------------------------------------------------------------------------------------------
// Server → client frames

/** Limits the server enforces, announced in `welcome` so clients can check before sending. */
export interface TopicLimits {
  maxMessageBytes: number;
  maxBatchMessages: number;
  maxBatchBytes: number;
}

/**
 * `welcome` (server → client): first frame on every socket. `head` is the offset the next
 * message will get; `earliest` the first offset still stored.
 */
export interface WelcomeFrame {
  type: "welcome";
  version: number;
  topic: string;
  head: number;
  earliest: number;
  limits: TopicLimits;
  /**
   * The topic's durability level (protocol/durability.ts); absent from servers before it was
   * added, which means `sync`. On a `memory` topic offsets still grow, but may jump forward.
   */
  durability?: Durability;
}

/** `ack` (server → client): the `publish` with this `id` is durable at `offset .. offset+count-1`. */
export interface AckFrame {
  type: "ack";
  id: number;
  offset: number;
  count: number;
  /** Present and true when this frame was a resend that the topic had already stored. */
  duplicate?: boolean;
}

/**
 * How a topic socket answers `publish` frames, chosen when it is opened (`?acks=`, docs/protocol.md):
 * `each` (the default) one `ack` frame per publish; `batch` one `acks` frame per commit and socket.
 */
export const ACK_MODES = ["each", "batch"] as const;
export type AckMode = (typeof ACK_MODES)[number];

/** One publish answered inside an `acks` frame: the fields of an {@link AckFrame} without `type`. */
export type AckEntry = Omit<AckFrame, "type">;

/**
 * `acks` (server → client), sockets opened with `?acks=batch` only: the answers to several
 * `publish` frames of this socket that became durable in the same commit, in the order the
 * publishes were sent. Why: at one message per frame the topic otherwise sends as many `ack`
 * frames as it receives publishes, and frames, not bytes, are what the runtime and the client
 * pay for (docs/decisions/034-fewer-frames-latency.md). Compatibility: a socket opened without
 * the parameter never gets it, so clients written before it keep working; refusals are still
 * `error` frames with the publish's `id`.
 */
export interface AcksFrame {
  type: "acks";
  acks: AckEntry[];
}

/** `subscribed` (server → client): delivery starts at `next`. */
export interface SubscribedFrame {
  type: "subscribed";
  id: number;
  next: number;
}

/** One stored message as it is delivered. Exactly one of `data` and `bytes` is present. */
export interface DeliveredMessage {
  offset: number;
  /** When the topic stored it, milliseconds since the epoch. */
  time: number;
  key?: string;
  /** Consumer-group priority, when the publisher gave one above 0. */
  priority?: number;
  /** When the message expires for consumer groups, when the publisher gave a TTL. */
  expiresAt?: number;
  headers?: Record<string, string>;
  data?: unknown;
  /** base64 */
  bytes?: string;
}

/**
 * `messages` (server → client): consecutive messages in offset order, never more than the
 * credit granted. The first offset of each frame follows the last of the previous one.
 */
export interface MessagesFrame {
  type: "messages";
  /** Pattern sockets only (protocol/patterns.ts): the topic these messages are from. */
  topic?: string;
  /**
   * Pattern sockets only: true when `topic` is a `memory` topic, whose offsets may jump forward
   * (protocol/durability.ts). On a topic socket the `welcome` frame says so instead.
   */
  skips?: boolean;
  messages: DeliveredMessage[];
}

/** `unsubscribed` (server → client): the subscription with this `id` has stopped. */
export interface UnsubscribedFrame {
  type: "unsubscribed";
  id: number;
}

/** `error` (server → client): `id` names the frame it answers, when it answers one. */
export type ErrorFrame = { type: "error"; id?: number; code: ErrorCode; message: string } & ErrorDetails;

export type ServerFrame =
  | WelcomeFrame
  | PatternWelcomeFrame
  | MatchingFrame
  | UnmatchedFrame
  | AckFrame
  | AcksFrame
  | SubscribedFrame
  | MessagesFrame
  | UnsubscribedFrame
  | ConsumingFrame
  | JobsFrame
  | SettledFrame
  | ServingFrame
  | IncomingRequestFrame
  | ReplyToRequesterFrame
  | IncomingRequestsFrame
  | RepliesToRequesterFrame
  | ErrorFrame;

// ---------------------------------------------------------------------------------------------
// Parsing

export type ParseResult<T> = { ok: true; frame: T } | { ok: false; error: DovetailError; id?: number };

/** A failed parse: the typed error, with the frame's `id` when one could be read. */
export function parseFailure<T>(code: ErrorCode, message: string, id?: unknown): ParseResult<T> {
  const result: ParseResult<T> = { ok: false, error: new DovetailError(code, message) };
  if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) result.id = id;
  return result;
}

/** A server frame of a type this client does not know (from a newer server): clients ignore it. */
export interface UnknownServerFrame {
  type: "unknown";
  /** The frame's own `type`. */
  name: string;
}

/**
 * Parse one server frame (client side). Servers are trusted more than clients, so this checks
 * only what a client relies on: a known `type` and the fields it reads. A frame of a type this
 * version does not know is `{ type: "unknown" }`, to be ignored (versioning rule, docs/protocol.md);
 * a known type with the wrong fields is `bad_frame`.
 */
export function parseServerFrame(raw: string | ArrayBuffer): ParseResult<ServerFrame | { type: "pong" } | UnknownServerFrame> {
  if (typeof raw !== "string") return parseFailure("bad_frame", "binary frame from server");
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return parseFailure("bad_frame", "server frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null) return parseFailure("bad_frame", "server frame is not an object");
  const f = value as Record<string, unknown>;
  switch (f.type) {
    case "messages":
      if (!Array.isArray(f.messages)) break;
      return { ok: true, frame: f as unknown as MessagesFrame };
    case "ack":
      if (typeof f.id !== "number" || typeof f.offset !== "number" || typeof f.count !== "number") break;
      return { ok: true, frame: f as unknown as AckFrame };
    case "acks":
      if (!Array.isArray(f.acks)) break;
      return { ok: true, frame: f as unknown as AcksFrame };
    case "subscribed":
      if (typeof f.id !== "number" || typeof f.next !== "number") break;
      return { ok: true, frame: f as unknown as SubscribedFrame };
    case "welcome":
      // A topic socket's (with `head`) or a pattern socket's (with `pattern`).
      if (typeof f.version !== "number") break;
      return { ok: true, frame: f as unknown as WelcomeFrame | PatternWelcomeFrame };
    case "unsubscribed":
      if (typeof f.id !== "number") break;
      return { ok: true, frame: f as unknown as UnsubscribedFrame };
    case "error":
      if (typeof f.code !== "string" || typeof f.message !== "string") break;
      return { ok: true, frame: f as unknown as ErrorFrame };
    case "jobs":
      if (!Array.isArray(f.jobs)) break;
      return { ok: true, frame: f as unknown as JobsFrame };
    case "consuming":
      if (typeof f.id !== "number" || typeof f.member !== "string") break;
      return { ok: true, frame: f as unknown as ConsumingFrame };
    case "settled":
      if (typeof f.id !== "number" || typeof f.count !== "number") break;
      return { ok: true, frame: f as unknown as SettledFrame };
    case "reply":
    case "request":
    case "serving":
    case "requests":
    case "replies":
    case "matching":
    case "unmatched":
      // Request/reply (protocol/requests.ts) and pattern subscriptions (protocol/patterns.ts):
      // checked by the clients that read them (sdk/src/requests.ts, sdk/src/pattern-subscription.ts,
      // loaded on first use), so the main bundle stays small (decision 025).
      return {
        ok: true,
        frame: f as unknown as
          | ServingFrame
          | IncomingRequestFrame
          | ReplyToRequesterFrame
          | IncomingRequestsFrame
          | RepliesToRequesterFrame
          | MatchingFrame
          | UnmatchedFrame,
      };
    case "pong":
      return { ok: true, frame: { type: "pong" } };
    default:
      if (typeof f.type === "string") return { ok: true, frame: { type: "unknown", name: f.type } };
  }
  return parseFailure("bad_frame", `unexpected server frame ${JSON.stringify(f.type)}`);
}

// ---------------------------------------------------------------------------------------------
// Encoding (server side helpers, kept here so the shape is defined once)

/**
 * Encode a `messages` frame from messages that are already JSON text. The topic stores each
 * message's JSON once and fans the same text out to every subscriber.
 */
export function encodeMessagesFrame(messageJson: readonly string[]): string {
  return `{"type":"messages","messages":[${messageJson.join(",")}]}`;
}

/** Encode an `acks` frame (the entries' fields in the same order as an `ack` frame's). */
export function encodeAcksFrame(acks: readonly AckEntry[]): string {
  let out = '{"type":"acks","acks":[';
  for (let i = 0; i < acks.length; i++) {
    const a = acks[i]!;
    out += `${i ? "," : ""}{"id":${a.id},"offset":${a.offset},"count":${a.count}${a.duplicate ? ',"duplicate":true' : ""}}`;
  }
  return `${out}]}`;
}

/** Encode an `error` frame. */
export function encodeErrorFrame(error: DovetailError, id?: number): string {
  const frame: Record<string, unknown> = { type: "error" };
  if (id !== undefined) frame.id = id;
  frame.code = error.code;
  frame.message = error.message;
  Object.assign(frame, error.details);
  return JSON.stringify(frame);
}

/** Encode any other server frame. */
export function encodeServerFrame(
  frame: Exclude<ServerFrame, MessagesFrame | AcksFrame | JobsFrame | ErrorFrame | PatternWelcomeFrame | MatchingFrame | UnmatchedFrame>,
): string {
  return JSON.stringify(frame);
}

/** Encode a client frame. */
export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}
