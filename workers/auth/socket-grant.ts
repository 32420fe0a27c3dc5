/**
 * What the gateway tells a topic object about a WebSocket it forwards: who opened it, what it
 * may do, and its limits. Sent in the {@link GRANT_HEADER} request header on the upgrade (the
 * gateway always overwrites any client-sent value) and kept in the socket attachment.
 *
 * The topic object trusts this header because only the gateway can reach it: Durable Objects
 * have no public route, and the gateway sets the header on every upgrade it forwards.
 */
import { z } from "zod";

export const GRANT_HEADER = "X-Dovetail-Grant";

const positive = z.number().positive();
export const socketGrantSchema = z.object({
  /** Credential id (`key:...`, `jwt:...`, `open`). */
  cred: z.string().max(512),
  /** May publish on this socket's topic. */
  pub: z.boolean(),
  /** May subscribe on this socket's topic. */
  sub: z.boolean(),
  /** When the credential expires (ms since the epoch); the socket is closed with 4401 after. */
  exp: z.number().optional(),
  /** Limits; absent when nothing is limited (auth off). */
  rate: z
    .object({
      framesPerSecond: positive,
      frameBurst: positive,
      bytesPerSecond: positive,
      byteBurst: positive,
      topicMessagesPerSecond: positive,
      topicMessageBurst: positive,
    })
    .optional(),
  /** Revocable credential: the socket is tagged so revocation can find and close it. */
  tag: z.boolean().optional(),
});
export type SocketGrant = z.infer<typeof socketGrantSchema>;

/** Read the grant header; `null` when absent or not valid (callers treat that as "no grant"). */
export function readGrant(headers: Headers): SocketGrant | null {
  const raw = headers.get(GRANT_HEADER);
  if (!raw) return null;
  try {
    const parsed = socketGrantSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** WebSocket close code when a socket's credential is revoked or expires (4000 + 401, as for refused upgrades). */
export const CREDENTIAL_CLOSE_CODE = 4401;
