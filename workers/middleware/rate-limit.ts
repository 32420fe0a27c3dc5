/**
 * rateLimit(): per-credential request limits, answered with 429, `Retry-After` and the JSON
 * error shape (docs/security.md, "Rate limits"; docs/decisions/012-rate-limit.md).
 *
 * - API keys: an exact token bucket per key (default 100/s, burst 200, configurable per key),
 *   kept by objects/keys.ts and counted in the same RPC that verifies the key; auth() leaves
 *   the verdict in `c.var.throttledMs`.
 * - JWTs: the Workers rate-limiting binding `JWT_RATE_LIMITER` (wrangler.toml `[[ratelimits]]`),
 *   keyed by the credential id: no extra hop, but fixed 10 s windows per location and one limit
 *   for all tokens.
 * - Auth off: nothing is limited.
 *
 * @example
 * app.use("/v1/*", auth(), rateLimit());
 */
import type { MiddlewareHandler } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { countRateLimited } from "../metrics/gateway-counts.ts";

/** What a JWT caller over the binding's limit is told to wait; the binding does not say. */
export const JWT_RETRY_AFTER_MS = 1000;

export function rateLimit(): MiddlewareHandler<GatewayEnv> {
  return async function rateLimit(c, next) {
    const credential = c.get("credential");
    if (credential.kind === "key") {
      const wait = c.get("throttledMs");
      if (wait) {
        countRateLimited(c, "api_key_requests");
        throw limited(wait);
      }
    } else if (credential.kind === "jwt" && c.env.JWT_RATE_LIMITER) {
      const { success } = await c.env.JWT_RATE_LIMITER.limit({ key: credential.id });
      if (!success) {
        countRateLimited(c, "jwt_requests");
        throw limited(JWT_RETRY_AFTER_MS);
      }
    }
    await next();
  };
}

function limited(retryAfterMs: number): DovetailError {
  return new DovetailError("rate_limited", `too many requests for this credential; retry after ${retryAfterMs} ms`, { retryAfterMs });
}
