/** Hono's type parameters for the gateway: bindings and per-request variables. */
import type { Env } from "./env.ts";
import type { Credential } from "../protocol/credential.ts";

export interface GatewayEnv {
  Bindings: Env;
  Variables: {
    /** The tenant this request acts for; topics are namespaced by it. */
    tenant: string;
    /** Who is calling (workers/middleware/auth.ts). */
    credential: Credential;
    /** The topic the route acts on, checked by permit() (workers/middleware/permissions.ts). */
    topic: string;
    /** Set by auth() when an API key's request bucket is empty; rateLimit() answers 429. */
    throttledMs: number;
    /** This request's id, in its log lines and `X-Request-Id` (workers/middleware/request-log.ts). */
    requestId: string;
    /** The code of the error this request was answered with, for its log line. */
    errorCode: string;
  };
}
