/**
 * Request/reply on the wire (docs/requests.md, docs/protocol.md "Request/reply"): a socket
 * serves a topic (`serve`), another sends `request`s; the topic hands each request to one member
 * of each serving group and sends the first `reply` back. A durable request is a message stored
 * in the topic and handed out by the responders' consumer group, so it survives a responder's
 * crash.
 *
 * This module builds no schema (clients import it; decision 025); the zod schemas of the client
 * frames and the HTTP body are in request-schemas.ts.
 *
 * Compatibility rule as for every v1 frame: receivers ignore fields they do not know.
 */

/** Default time a request waits for its reply. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Longest time a request may wait for its reply (WebSocket and HTTP). */
export const MAX_REQUEST_TIMEOUT_MS = 300_000;
/** Requests waiting for a reply in one topic, at most; more are refused with `rate_limited`. */
export const MAX_PENDING_REQUESTS = 10_000;
/** The group a responder joins when it names none. */
export const DEFAULT_SERVE_GROUP = "default";
/** Longest `code` and `message` of an error reply. */
export const MAX_REMOTE_CODE_LENGTH = 128;
export const MAX_REMOTE_MESSAGE_LENGTH = 4096;
/** Most requests in one batch `request` frame, replies in one batch `reply` frame. */
export const MAX_BATCH_REQUESTS = 1000;
/** Request ids: what the topic makes (`r` + random + counter); a reply naming anything else is dropped. */
export const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Headers of a durable request as it is stored in the topic (a message the responders' group
 * hands out): the request id a reply names, and when the requester stops waiting (the message
 * also carries `expiresAt`, so the group drops it after that).
 */
export const REQUEST_HEADERS = {
  id: "dovetail-request-id",
  deadline: "dovetail-request-deadline",
} as const;

// The zod schemas of these frames are in request-schemas.ts. Their types:
export type { ReplyFrame, ReplyItem, RequestBody, RequestFrame, RequestItem, ServeFrame } from "./request-schemas.ts";

// ---------------------------------------------------------------------------------------------
// Server → client frames

/** `serving` (server → client): this socket is responder `responder` in `group`. Answers `serve`. */
export interface ServingFrame {
  type: "serving";
  id: number;
  group: string;
  responder: string;
}

/**
 * `request` (server → responder): answer it with a `reply` naming `requestId` within
 * `timeoutMs` (after that the requester has stopped waiting and the reply is dropped).
 */
export interface IncomingRequestFrame {
  type: "request";
  requestId: string;
  data: unknown;
  timeoutMs: number;
  /** The requester's W3C traceparent, when it sent one (docs/observability.md, "Tracing"). */
  traceparent?: string;
}

/** `reply` (server → requester): the answer to the `request` with this `id`. */
export interface ReplyToRequesterFrame {
  type: "reply";
  id: number;
  data: unknown;
}

/**
 * `requests` (server → responder): several requests at once, each as in a `request` frame. The
 * topic sends it when it hands one responder more than one request in one turn (a requester's
 * batch); answer each with a `reply`, or several in one batch `reply` frame.
 */
export interface IncomingRequestsFrame {
  type: "requests";
  requests: Omit<IncomingRequestFrame, "type">[];
}

/** One answer in a `replies` frame: the reply's `data`, or the `error` an `error` frame would carry. */
export type ReplyToRequester = { id: number; data: unknown } | { id: number; error: { code: string; message: string; remoteCode?: string } };

/**
 * `replies` (server → requester): answers to requests sent in batch `request` frames, as they come;
 * each request of a batch gets exactly one item with its `id`.
 */
export interface RepliesToRequesterFrame {
  type: "replies";
  replies: ReplyToRequester[];
}

/** What a topic answers a request made over RPC (`POST /v1/topics/{topic}/request`): the reply's data as JSON text. */
export interface RequestReply {
  dataJson: string;
}
