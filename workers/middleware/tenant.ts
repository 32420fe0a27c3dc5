/**
 * tenant(): decides which tenant a request acts for. Until authentication lands (issue 5) every
 * request belongs to the `default` tenant; the auth middleware will set the tenant from the
 * credential instead, and everything downstream already namespaces topics by `c.var.tenant`.
 */
import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../gateway-env.ts";

export const DEFAULT_TENANT = "default";

export function tenant(): MiddlewareHandler<GatewayEnv> {
  return async function tenant(c, next) {
    c.set("tenant", DEFAULT_TENANT);
    await next();
  };
}
