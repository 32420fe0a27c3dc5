/** Bindings and variables the gateway and the topic objects see (wrangler.toml). */
import type { LimitsEnv } from "../objects/limits.ts";
import type { Topic } from "../objects/topic.ts";
import type { Keys } from "../objects/keys.ts";
import type { Directory } from "../objects/directory.ts";
import type { JwtEnv } from "./auth/jwt.ts";

export interface Env extends LimitsEnv, JwtEnv {
  TOPIC: DurableObjectNamespace<Topic>;
  /** API keys (hashes) and their request buckets: objects/keys.ts. */
  KEYS: DurableObjectNamespace<Keys>;
  /** Each tenant's index of topics: objects/directory.ts. */
  DIRECTORY: DurableObjectNamespace<Directory>;
  /** Workers rate-limiting binding for JWT credentials (docs/decisions/012-rate-limit.md). */
  JWT_RATE_LIMITER?: RateLimit;
  /** `off` runs the bus open (local dev, tests, demos only); anything else, or unset, requires credentials. */
  DOVETAIL_AUTH?: string;
}
