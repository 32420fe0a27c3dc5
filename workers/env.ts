/** Bindings and variables the gateway and the topic objects see (wrangler.toml). */
import type { LimitsEnv } from "../objects/limits.ts";
import type { Topic } from "../objects/topic.ts";

export interface Env extends LimitsEnv {
  TOPIC: DurableObjectNamespace<Topic>;
}
