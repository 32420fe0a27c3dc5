/**
 * Pattern subscriptions: one socket that delivers the messages of every topic whose name matches
 * a pattern (`agents.*.events`, `agents.>`: the grammar of protocol/scopes.ts), including topics
 * created after it started. docs/patterns.md says what a user may rely on; decision 030 why it is
 * built this way.
 *
 * Transport: `GET /v1/patterns/ws?pattern=…` (WebSocket, the same credentials as topic sockets).
 * Frames (JSON text, as on topic sockets; receivers ignore fields they do not know):
 *
 * client → server
 * - `subscribe` {@link PatternSubscribeFrame}: start, once per socket; answered by `matching`.
 * - `credit` / `unsubscribe`: as on topic sockets (the credit counts messages of any topic).
 *
 * server → client
 * - `welcome` {@link PatternWelcomeFrame}: first frame.
 * - `matching` {@link MatchingFrame}: the subscription runs; every topic it matched so far is
 *   subscribed, so a message published after this frame is delivered.
 * - `messages` with a `topic` field: consecutive messages of that topic, in offset order. Frames of
 *   different topics interleave; nothing is promised about order across topics.
 * - `unmatched` {@link UnmatchedFrame}: one topic is no longer delivered (deleted, or refused).
 * - `error`, `unsubscribed`: as on topic sockets.
 *
 * Resume: the client keeps, per topic, the offset after the last message it received, and sends
 * them back as `cursors` with the `startedAt` of the first `matching` frame; a topic with a
 * cursor continues there (no gap, no duplicate), a topic without one starts as it would have then.
 */

/** The WebSocket route of pattern subscriptions; the pattern is its `pattern` query parameter. */
export const PATTERN_SOCKET_PATH = "/v1/patterns/ws";

/** Most topics one pattern subscription follows (`too_many_topics` beyond). */
export const MAX_PATTERN_TOPICS = 10_000;

/** Does `name` hold a wildcard (`*` or `>`), so that it is a pattern and not a topic name? (Topic names never do.) */
export function isTopicPattern(name: string): boolean {
  return name.includes("*") || name.includes(">");
}

/** Where each matched topic starts when the subscription has no cursor for it. */
export type PatternFrom = "earliest" | "latest" | { time: number };

/**
 * `subscribe` (client → server) on a pattern socket.
 * - `from`: where topics that existed when the subscription started begin (`latest`, the default:
 *   only messages published after `matching`). Topics created later always begin at their first
 *   message.
 * - `credit`: messages the server may send before more credit (default 1000), over all topics.
 * - `cursors`: resume: topic → next offset to deliver.
 * - `startedAt`: resume: the `startedAt` of the first `matching` frame, so that topics without a
 *   cursor start as they would have then (`latest` becomes "stored at or after `startedAt`", and
 *   topics created since then start at their first message).
 */
export interface PatternSubscribeFrame {
  type: "subscribe";
  id: number;
  from?: PatternFrom;
  credit?: number;
  cursors?: Record<string, number>;
  startedAt?: number;
}

/** `welcome` (server → client): first frame on a pattern socket. */
export interface PatternWelcomeFrame {
  type: "welcome";
  version: number;
  pattern: string;
}

/** `matching` (server → client): the answer to `subscribe`. */
export interface MatchingFrame {
  type: "matching";
  id: number;
  pattern: string;
  /** When the subscription started (ms since the epoch): send it back with `cursors` to resume. */
  startedAt: number;
  /** How many topics it follows now (those the credential may subscribe to). */
  topics: number;
}

/**
 * `unmatched` (server → client): `topic` is no longer delivered, because of `code`: `topic_deleted`
 * (its offsets start over if it is created again, and it is then delivered from its first
 * message), `offset_out_of_range` (a resume cursor past its end), `forbidden`, ... The client
 * forgets its cursor for the topic.
 */
export interface UnmatchedFrame {
  type: "unmatched";
  topic: string;
  code: string;
  message: string;
}

/** A pattern socket's `messages` frame starts like this; the topic's own frame follows its first field. */
const MESSAGES_PREFIX = '{"type":"messages",';

/**
 * A topic socket's `messages` frame text as a pattern socket's: the same text with the topic's
 * name added, without parsing or re-encoding the messages.
 *
 * @example
 * patternMessagesFrame("a.b", '{"type":"messages","messages":[…]}') // '{"type":"messages","topic":"a.b","messages":[…]}'
 */
export function patternMessagesFrame(topic: string, topicFrame: string, skips = false): string {
  return `${MESSAGES_PREFIX}"topic":${JSON.stringify(topic)},${skips ? '"skips":true,' : ""}${topicFrame.slice(MESSAGES_PREFIX.length)}`;
}
