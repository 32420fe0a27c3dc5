/**
 * auth(): who is calling. Reads the credential (`Authorization: Bearer <API key | JWT>`, or for
 * WebSocket upgrades only, `?token=`), verifies it, and sets `c.var.credential` and
 * `c.var.tenant` (the contract workers/middleware/tenant.ts introduced: every topic is namespaced
 * by `c.var.tenant`).
 *
 * What the caller may do is declared by each route and checked by permit()
 * (workers/middleware/permissions.ts).
 *
 * With `DOVETAIL_AUTH=off` every request is the open credential (tenant `default`, all scopes,
 * no limits) and the gateway says so: a console warning per isolate start, `auth: "off"` in
 * `/healthz`. See docs/security.md.
 *
 * @example
 * app.use("/v1/*", auth());
 * app.use("/v1/*", rateLimit());
 */
import type { Context, MiddlewareHandler } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { KEYS_OBJECT_NAME } from "../../objects/keys.ts";
import { hashApiKey, parseApiKey } from "../../protocol/api-key.ts";
import { OPEN_CREDENTIAL, type Credential } from "../../protocol/credential.ts";
import { jwtConfigFromEnv, looksLikeJwt, verifyJwt } from "../auth/jwt.ts";
import type { Env } from "../env.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { log } from "../log.ts";
import { countAuthFailure, type AuthFailure } from "../metrics/gateway-counts.ts";

/** Longest credential accepted (a JWT with many scopes stays far below). */
export const MAX_CREDENTIAL_LENGTH = 8192;
/** Query parameter that carries a credential on WebSocket upgrades (browsers cannot set headers). */
export const TOKEN_QUERY_PARAM = "token";

/** Is auth switched off for this deployment? Only the exact value `off` does it. */
export function authIsOff(env: Pick<Env, "DOVETAIL_AUTH" | "LOG_LEVEL">): boolean {
  const off = env.DOVETAIL_AUTH === "off";
  if (off) warnOpenOnce(env);
  return off;
}

let warnedOpen = false;
function warnOpenOnce(env: Pick<Env, "LOG_LEVEL">): void {
  if (warnedOpen) return;
  warnedOpen = true;
  log(
    env,
    "warn",
    "!!! DOVETAIL_AUTH=off: this bus accepts every request WITHOUT credentials (tenant `default`, all scopes, no rate limits). Use this only for local development, tests and demos. Never deploy it.",
  );
}

function isUpgrade(c: Context): boolean {
  return c.req.header("Upgrade")?.toLowerCase() === "websocket";
}

/** A refused credential, with the reason `amb_auth_failures_total` counts it under. */
function refused(reason: AuthFailure, message: string): DovetailError {
  const error = new DovetailError("unauthorized", message);
  refusalReasons.set(error, reason);
  return error;
}
/** Kept beside the error, not in its details: details go on the wire. */
const refusalReasons = new WeakMap<DovetailError, AuthFailure>();

function presentedToken(c: Context): string | null {
  const header = c.req.header("Authorization");
  if (header !== undefined) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m) throw refused("malformed", "Authorization header must be `Bearer <API key or JWT>`");
    return m[1]!;
  }
  if (isUpgrade(c)) return c.req.query(TOKEN_QUERY_PARAM) ?? null;
  return null;
}

async function authenticate(c: Context<GatewayEnv>, token: string): Promise<Credential> {
  if (token.length > MAX_CREDENTIAL_LENGTH) throw refused("too_long", "credential is too long");
  const apiKey = parseApiKey(token);
  if (apiKey) {
    const keys = c.env.KEYS.get(c.env.KEYS.idFromName(KEYS_OBJECT_NAME));
    const admission = await keys.admit(apiKey.id, await hashApiKey(token));
    if (!admission.ok && admission.code === "unauthorized") throw refused("api_key", admission.message);
    if (!admission.ok) c.set("throttledMs", admission.retryAfterMs);
    const { record, scopes } = admission;
    return {
      id: `key:${record.id}`,
      kind: "key",
      tenant: record.tenant,
      scopes,
      rate: record.rate,
      ...(record.expiresAt !== null ? { expiresAt: record.expiresAt } : {}),
    };
  }
  if (looksLikeJwt(token)) {
    try {
      return await verifyJwt(token, jwtConfigFromEnv(c.env));
    } catch (error) {
      if (error instanceof DovetailError && error.code === "unauthorized") throw refused("jwt", error.message);
      throw error;
    }
  }
  throw refused("unrecognised", "credential is neither an API key (dvt_...) nor a JWT");
}

/** Authenticate the request and set `c.var.credential` and `c.var.tenant`. */
export function auth(): MiddlewareHandler<GatewayEnv> {
  return async function auth(c, next) {
    let credential: Credential;
    if (authIsOff(c.env)) {
      credential = OPEN_CREDENTIAL;
    } else {
      try {
        const token = presentedToken(c);
        if (!token) {
          throw refused(
            "missing",
            isUpgrade(c)
              ? "no credential: send Authorization: Bearer <credential> or ?token=<credential>"
              : "no credential: send Authorization: Bearer <API key or JWT>",
          );
        }
        credential = await authenticate(c, token);
      } catch (error) {
        const reason = error instanceof DovetailError ? refusalReasons.get(error) : undefined;
        if (reason) countAuthFailure(c, reason, null);
        throw error;
      }
    }
    c.set("credential", credential);
    c.set("tenant", credential.tenant);
    await next();
  };
}
