/**
 * What the gateway tells a topic object about a WebSocket it opens there: who opened it, what it
 * may do, and its limits. It travels in the upgrade request the gateway builds from scratch
 * (protocol/topic-request.ts) and is kept in the socket attachment.
 *
 * The topic object trusts it because only the gateway can reach it (Durable Objects have no public
 * route) and no part of a client's request is passed on to the object.
 */
import { z } from "zod";
import type { Credential } from "./credential.ts";

const positive = z.number().positive();
export const socketGrantSchema = z.object({
  /** Credential id (`key:...`, `jwt:...`, `open`). */
  cred: z.string().max(512),
  /** May publish on this socket's topic. */
  pub: z.boolean(),
  /** May subscribe on this socket's topic. */
  sub: z.boolean(),
  /** May consume from this topic's groups (absent on sockets opened before groups existed). */
  con: z.boolean().optional(),
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

/** The grant for a socket opened with `credential`, which may publish and/or subscribe on its topic. */
export function socketGrantFor(credential: Credential, rights: { pub: boolean; sub: boolean; con: boolean }): SocketGrant {
  const grant: SocketGrant = { cred: credential.id, ...rights };
  if (credential.expiresAt !== undefined) grant.exp = credential.expiresAt;
  if (credential.rate) {
    const r = credential.rate;
    grant.rate = {
      framesPerSecond: r.framesPerSecond,
      frameBurst: r.frameBurst,
      bytesPerSecond: r.bytesPerSecond,
      byteBurst: r.byteBurst,
      topicMessagesPerSecond: r.topicMessagesPerSecond,
      topicMessageBurst: r.topicMessageBurst,
    };
  }
  if (credential.kind === "key") grant.tag = true;
  return grant;
}
