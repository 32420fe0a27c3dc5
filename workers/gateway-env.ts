/** Hono's type parameters for the gateway: bindings and per-request variables. */
import type { Env } from "./env.ts";

export interface GatewayEnv {
  Bindings: Env;
  Variables: {
    /** The tenant this request acts for; topics are namespaced by it. */
    tenant: string;
  };
}
