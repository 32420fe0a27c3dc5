/** Bindings and variables the gateway sees (wrangler.toml): the objects' own, and the gateway's. */
import type { ObjectsEnv } from "../objects/env.ts";
import type { JwtEnv } from "./auth/jwt.ts";

export interface Env extends ObjectsEnv, JwtEnv {
  /** Workers rate-limiting binding for JWT credentials (docs/decisions/012-rate-limit.md). */
  JWT_RATE_LIMITER?: RateLimit;
  /** `off` runs the bus open (local dev, tests, demos only); anything else, or unset, requires credentials. */
  DOVETAIL_AUTH?: string;
  /** Secret bearer token for the operator's `GET /metrics` view of every tenant (docs/observability.md); unset: no such view. */
  DOVETAIL_METRICS_TOKEN?: string;
  /** Least level logged: `debug`, `info` (default), `warn`, `error` (docs/observability.md, "Logs"). */
  LOG_LEVEL?: string;
}
