/**
 * The bindings and variables the Durable Objects use (wrangler.toml). The gateway's Env
 * (workers/env.ts) extends this one; objects never import the gateway.
 */
import type { Directory } from "./directory.ts";
import type { Keys } from "./keys.ts";
import type { Mail } from "./mail.ts";
import type { LimitsEnv } from "./limits.ts";
import type { PatternFeed } from "./patterns/pattern-feed.ts";
import type { Registry } from "./registry.ts";
import type { Subscription } from "./subscription.ts";
import type { SubscriptionSigning } from "./subscription-signing.ts";
import type { Topic } from "./topic.ts";

export interface ObjectsEnv extends LimitsEnv {
  TOPIC: DurableObjectNamespace<Topic>;
  /** API keys (hashes), their request buckets and their live sockets: objects/keys.ts. */
  KEYS: DurableObjectNamespace<Keys>;
  /** Each tenant's index of topics: objects/directory.ts. */
  DIRECTORY: DurableObjectNamespace<Directory>;
  /** Durable Streams subscriptions, one per tenant and id: objects/subscription.ts. */
  DS_SUBSCRIPTION: DurableObjectNamespace<Subscription>;
  /** The deployment's webhook signing key: objects/subscription-signing.ts. */
  DS_SIGNING: DurableObjectNamespace<SubscriptionSigning>;
  /** Each tenant's agent registry and presence: objects/registry.ts. */
  REGISTRY: DurableObjectNamespace<Registry>;
  /** Pattern subscriptions, one object per socket: objects/patterns/pattern-feed.ts. */
  PATTERN_FEED: DurableObjectNamespace<PatternFeed>;
  /** Each tenant's agent mail: objects/mail.ts. */
  MAIL: DurableObjectNamespace<Mail>;
  /** Mail requests per second per agent (default 100) and their burst (default 200): docs/mail.md. */
  MAIL_RATE_PER_SECOND?: string;
  MAIL_RATE_BURST?: string;
  /** Optional Workers Analytics Engine dataset for metrics (docs/observability.md); unbound by default. */
  DOVETAIL_ANALYTICS?: AnalyticsEngineDataset;
  /** `off`: topics count nothing for `GET /metrics` (to measure what counting costs; docs/observability.md). */
  DOVETAIL_METRICS?: string;
}
