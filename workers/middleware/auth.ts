/**
 * auth(): who is calling. Reads the credential (`Authorization: Bearer <API key | JWT>`, or for
 * WebSocket upgrades only, `?token=`), verifies it, and sets `c.var.credential` and
 * `c.var.tenant` (the contract workers/middleware/tenant.ts introduced: every topic is namespaced
 * by `c.var.tenant`).
 *
 * permissions(): may the caller do this? Maps the route to a scope action and topic, checks it
 * with the one matcher (workers/auth/scopes.ts), and for WebSocket upgrades writes the grant the
 * topic object enforces per frame (workers/auth/socket-grant.ts).
 *
 * With `DOVETAIL_AUTH=off` every request is the open credential (tenant `default`, all scopes,
 * no limits) and the gateway says so: a console warning per isolate start, `auth: "off"` in
 * `/healthz`. See docs/security.md.
 *
 * @example
 * app.use("/v1/*", auth());
 * app.use("/v1/*", rateLimit());
 * app.use("/v1/*", permissions());
 */
import type { Context, MiddlewareHandler } from "hono";
import { DovetailError } from "../../sdk/src/errors.ts";
import { topicNameProblem } from "../../sdk/src/topic-name.ts";
import { KEYS_OBJECT_NAME } from "../../objects/keys.ts";
import { hashApiKey, parseApiKey } from "../auth/api-key.ts";
import { OPEN_CREDENTIAL, type Credential } from "../auth/credential.ts";
import { jwtConfigFromEnv, looksLikeJwt, verifyJwt } from "../auth/jwt.ts";
import { allows, type ScopeAction } from "../auth/scopes.ts";
import { GRANT_HEADER, type SocketGrant } from "../auth/socket-grant.ts";
import type { Env } from "../env.ts";
import type { GatewayEnv } from "../gateway-env.ts";

/** Longest credential accepted (a JWT with many scopes stays far below). */
export const MAX_CREDENTIAL_LENGTH = 8192;
/** Query parameter that carries a credential on WebSocket upgrades (browsers cannot set headers). */
export const TOKEN_QUERY_PARAM = "token";

/** Is auth switched off for this deployment? Only the exact value `off` does it. */
export function authIsOff(env: Pick<Env, "DOVETAIL_AUTH">): boolean {
  const off = env.DOVETAIL_AUTH === "off";
  if (off) warnOpenOnce();
  return off;
}

let warnedOpen = false;
function warnOpenOnce(): void {
  if (warnedOpen) return;
  warnedOpen = true;
  console.warn(
    "\n!!! DOVETAIL_AUTH=off: this bus accepts every request WITHOUT credentials (tenant `default`, all scopes, no rate limits).\n" +
      "!!! Use this only for local development, tests and demos. Never deploy it.\n",
  );
}

function isUpgrade(c: Context): boolean {
  return c.req.header("Upgrade")?.toLowerCase() === "websocket";
}

const TOPIC_PATH = /^\/v1\/topics\/([^/]+)(\/ws|\/messages)?$/;
const STREAM_PATH = /^\/v1\/stream\/(.+)$/;

/** Decoded, valid topic name from a path segment, or undefined (the route answers 400). */
function topicFromPath(raw: string): string | undefined {
  let topic: string;
  try {
    topic = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  return topicNameProblem(topic) ? undefined : topic;
}

interface RouteTarget {
  /** Decoded, valid topic name; undefined for non-topic routes or invalid names (the route answers 400). */
  topic?: string;
  kind: "ws" | "messages" | "topic" | "stream" | "admin" | "other";
}

function routeTarget(path: string): RouteTarget {
  if (path === "/v1/admin" || path.startsWith("/v1/admin/")) return { kind: "admin" };
  const stream = STREAM_PATH.exec(path);
  if (stream) {
    const topic = topicFromPath(stream[1]!);
    return topic === undefined ? { kind: "stream" } : { topic, kind: "stream" };
  }
  const m = TOPIC_PATH.exec(path);
  if (!m) return { kind: "other" };
  const kind = m[2] === "/ws" ? "ws" : m[2] === "/messages" ? "messages" : "topic";
  const topic = topicFromPath(m[1]!);
  return topic === undefined ? { kind } : { topic, kind };
}

function presentedToken(c: Context): string | null {
  const header = c.req.header("Authorization");
  if (header !== undefined) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m) throw new DovetailError("unauthorized", "Authorization header must be `Bearer <API key or JWT>`");
    return m[1]!;
  }
  if (isUpgrade(c)) return c.req.query(TOKEN_QUERY_PARAM) ?? null;
  return null;
}

async function authenticate(c: Context<GatewayEnv>, token: string): Promise<Credential> {
  if (token.length > MAX_CREDENTIAL_LENGTH) throw new DovetailError("unauthorized", "credential is too long");
  const apiKey = parseApiKey(token);
  if (apiKey) {
    const target = routeTarget(c.req.path);
    const socketTopic = target.kind === "ws" && isUpgrade(c) ? target.topic : undefined;
    const keys = c.env.KEYS.get(c.env.KEYS.idFromName(KEYS_OBJECT_NAME));
    const admission = await keys.admit(apiKey.id, await hashApiKey(token), socketTopic);
    if (!admission.ok && admission.code === "unauthorized") throw new DovetailError("unauthorized", admission.message);
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
  if (looksLikeJwt(token)) return verifyJwt(token, jwtConfigFromEnv(c.env));
  throw new DovetailError("unauthorized", "credential is neither an API key (dvt_...) nor a JWT");
}

/** Authenticate the request and set `c.var.credential` and `c.var.tenant`. */
export function auth(): MiddlewareHandler<GatewayEnv> {
  return async function auth(c, next) {
    let credential: Credential;
    if (authIsOff(c.env)) {
      credential = OPEN_CREDENTIAL;
    } else {
      const token = presentedToken(c);
      if (!token) {
        throw new DovetailError(
          "unauthorized",
          isUpgrade(c) ? "no credential: send Authorization: Bearer <credential> or ?token=<credential>" : "no credential: send Authorization: Bearer <API key or JWT>",
        );
      }
      credential = await authenticate(c, token);
    }
    c.set("credential", credential);
    c.set("tenant", credential.tenant);
    await next();
  };
}

function forbidden(what: string): DovetailError {
  return new DovetailError("forbidden", `this credential may not ${what}`);
}

/** The scope check for each route, and the grant for WebSocket upgrades. Runs after auth(). */
export function permissions(): MiddlewareHandler<GatewayEnv> {
  return async function permissions(c, next) {
    const credential = c.get("credential");
    const { scopes } = credential;
    const target = routeTarget(c.req.path);
    const method = c.req.method;
    const can = (action: ScopeAction) => allows(scopes, action, target.topic);
    if (target.kind === "admin") {
      if (!allows(scopes, "admin")) throw forbidden("use the admin API (it needs the scope admin:>)");
    } else if (target.topic !== undefined) {
      const topic = target.topic;
      if (target.kind === "ws" && method === "GET") {
        if (!can("publish") && !can("subscribe")) throw forbidden(`publish or subscribe on ${topic}`);
        if (isUpgrade(c)) forwardGrant(c, credential, { pub: can("publish"), sub: can("subscribe") });
      } else if (target.kind === "messages" && method === "POST") {
        if (!can("publish")) throw forbidden(`publish on ${topic}`);
      } else if (target.kind === "messages" && method === "GET") {
        if (!can("subscribe")) throw forbidden(`read ${topic} (it needs subscribe)`);
      } else if (target.kind === "topic" && method === "GET") {
        if (!can("subscribe") && !can("publish") && !can("admin")) throw forbidden(`see ${topic}`);
      } else if (target.kind === "topic" && method === "PATCH") {
        if (!can("admin")) throw forbidden(`configure ${topic} (it needs admin)`);
      } else if (target.kind === "stream") {
        // Durable Streams: reading needs subscribe; creating, appending, closing, deleting publish.
        if (method === "GET" || method === "HEAD") {
          if (!can("subscribe")) throw forbidden(`read stream ${topic} (it needs subscribe)`);
        } else if (!can("publish")) {
          throw forbidden(`${method} stream ${topic} (it needs publish)`);
        }
        // A fork copies its source: creating one also needs subscribe on the source.
        const forkedFrom = c.req.header("Stream-Forked-From");
        if (method === "PUT" && forkedFrom !== undefined) {
          const source = topicFromPath(forkedFrom.replace(/^\/v1\/stream\//, "").replace(/^\/+/, ""));
          if (source !== undefined && !allows(scopes, "subscribe", source)) throw forbidden(`fork ${source} (it needs subscribe on the source)`);
        }
      }
    }
    await next();
  };
}

/**
 * Rewrite the upgrade request the route forwards to the topic object: our grant header replaces
 * whatever the client sent, and the credential itself (header or `?token=`) is not passed on.
 */
function forwardGrant(c: Context<GatewayEnv>, credential: Credential, rights: { pub: boolean; sub: boolean }): void {
  const grant: SocketGrant = { cred: credential.id, ...rights };
  if (credential.expiresAt !== undefined) grant.exp = credential.expiresAt;
  if (credential.rate) {
    const r = credential.rate;
    grant.rate = {
      framesPerSecond: r.framesPerSecond,
      frameBurst: r.frameBurst,
      bytesPerSecond: r.bytesPerSecond,
      byteBurst: r.byteBurst,
      topicMessagesPerSecond: r.topicMessagesPerSecond,
      topicMessageBurst: r.topicMessageBurst,
    };
  }
  if (credential.kind === "key") grant.tag = true;
  const headers = new Headers(c.req.raw.headers);
  headers.delete("Authorization");
  headers.set(GRANT_HEADER, JSON.stringify(grant));
  const url = new URL(c.req.raw.url);
  url.searchParams.delete(TOKEN_QUERY_PARAM);
  c.req.raw = new Request(url.toString(), { method: c.req.raw.method, headers });
}
