/**
 * The only HTTP request a Registry object's `fetch()` takes: a presence socket's upgrade, built
 * from scratch by the gateway, as topic upgrades are (protocol/topic-request.ts, decision 022):
 * no byte of the client's request reaches the object, only the grant the gateway computed.
 *
 * @example
 * const res = await registry.fetch(registryUpgradeRequest(grant));
 */
import { socketGrantSchema, type SocketGrant } from "./grant.ts";

/** Host of internal URLs: never resolved, a Durable Object stub ignores it. */
const INTERNAL_ORIGIN = "https://registry.internal";

/**
 * The upgrade request the gateway sends the tenant's Registry. In the grant, `pub` means the
 * credential may register agents, `sub` that it may read the registry (docs/security.md).
 */
export function registryUpgradeRequest(grant: SocketGrant): Request {
  const url = new URL("/presence", INTERNAL_ORIGIN);
  url.searchParams.set("grant", JSON.stringify(grant));
  return new Request(url, { headers: { Upgrade: "websocket" } });
}

/** The grant {@link registryUpgradeRequest} wrote; null for any other request. */
export function readRegistryUpgrade(request: Request): SocketGrant | null {
  const url = new URL(request.url);
  if (url.pathname !== "/presence") return null;
  let grant: unknown;
  try {
    grant = JSON.parse(url.searchParams.get("grant") ?? "");
  } catch {
    return null;
  }
  const parsed = socketGrantSchema.safeParse(grant);
  return parsed.success ? parsed.data : null;
}
