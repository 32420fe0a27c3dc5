/**
 * Every WebSocket close code the server sends, in one table: the topic object, the gateway and
 * the SDK all take them from here, and docs/protocol.md ("Close codes") describes the same table.
 */
import type { ErrorCode } from "./errors.ts";

export const CLOSE_CODES = {
  /** Normal close (also what the server answers a client's close with). */
  normal: 1000,
  /** The client kept sending while refused with `rate_limited` (its refusal budget ran out). */
  policyViolation: 1008,
  /** A frame larger than the runtime accepts (sent by the runtime). */
  tooBig: 1009,
  /** The server failed. */
  serverError: 1011,
  /** The topic was deleted (a `topic_deleted` error frame comes first). */
  topicDeleted: 4004,
  /** Agent registry: a newer connection took this presence socket's agent over (an `agent_replaced` error frame comes first); do not reconnect to register it again. */
  agentReplaced: 4009,
  /** The socket's credential was revoked or expired (an `unauthorized` error frame comes first); also a refused upgrade for lack of a credential. */
  credentialEnded: 4401,
} as const;

/** A refused upgrade: the socket opens, one error frame explains, then it closes with 4000 + the HTTP status (4400, 4401, 4403, 4404, 4429, 4500). */
export function upgradeRefusalCloseCode(status: number): number {
  return 4000 + status;
}

/**
 * The error a client's connection ends with for close code `code`, when no retry can help; null
 * when the client should reconnect. (A refusal's error frame, when it came, says more.)
 */
export function closeCodeError(code: number): ErrorCode | null {
  switch (code) {
    case upgradeRefusalCloseCode(400):
      return "invalid_field";
    case CLOSE_CODES.credentialEnded:
      return "unauthorized";
    case upgradeRefusalCloseCode(403):
      return "forbidden";
    case upgradeRefusalCloseCode(404):
      return "not_found";
    case CLOSE_CODES.topicDeleted:
      return "topic_deleted";
    case CLOSE_CODES.agentReplaced:
      return "agent_replaced";
    default:
      return null;
  }
}
