/**
 * The only HTTP request a PatternFeed object's `fetch()` takes: the WebSocket upgrade the gateway
 * builds from scratch for a pattern socket (as protocol/topic-request.ts does for topic sockets:
 * no byte of the client's request reaches the object).
 *
 * @example
 * const res = await feed.fetch(patternUpgradeRequest({ tenant, pattern, scopes: ["agents.>"], grant }));
 */
import { z } from "zod";
import { socketGrantSchema, type SocketGrant } from "./grant.ts";
import { MAX_SCOPES, patternProblem } from "./scopes.ts";

export interface PatternUpgrade {
  tenant: string;
  /** The subscription's pattern (valid: the gateway checked it). */
  pattern: string;
  /** The patterns of the credential's `subscribe` scopes: only topics one of them matches are delivered. */
  scopes: string[];
  /** What the feed's sockets to the matched topics are opened with (`sub` only). */
  grant: SocketGrant;
}

const patternSchema = z.string().refine((p) => patternProblem(p) === null);
const upgradeSchema = z.object({
  tenant: z.string().min(1),
  pattern: patternSchema,
  scopes: z.array(patternSchema).max(MAX_SCOPES),
  grant: socketGrantSchema,
});

/** Host of internal URLs: never resolved, a Durable Object stub ignores it. */
const INTERNAL_ORIGIN = "https://pattern.internal";

export function patternUpgradeRequest(upgrade: PatternUpgrade): Request {
  const url = new URL("/socket", INTERNAL_ORIGIN);
  url.searchParams.set("upgrade", JSON.stringify(upgrade));
  return new Request(url, { headers: { Upgrade: "websocket" } });
}

/** Read what {@link patternUpgradeRequest} wrote; `null` for anything else. */
export function readPatternUpgrade(request: Request): PatternUpgrade | null {
  const url = new URL(request.url);
  if (url.pathname !== "/socket") return null;
  let value: unknown;
  try {
    value = JSON.parse(url.searchParams.get("upgrade") ?? "");
  } catch {
    return null;
  }
  const parsed = upgradeSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}
