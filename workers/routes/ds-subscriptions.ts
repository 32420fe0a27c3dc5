/**
 * /v1/stream/__ds/…: the Durable Streams subscription APIs (protocol sections 6 and 7;
 * docs/streams.md "Subscriptions"; decision 027), routed before the stream routes so `__ds` is
 * never a stream.
 *
 * Two groups, because they authenticate differently:
 * - {@link dsTokenRoutes}, mounted before the gateway's auth(): `jwks.json` (public: webhook
 *   receivers fetch it) and `callback`, `ack`, `release`, which carry a wake's token instead of a
 *   credential (protocol 12.9). The tenant and id are read from the token to route it; the
 *   subscription object verifies its signature, generation and wake id.
 * - {@link dsSubscriptionRoutes}, behind auth() and permit(): creating, re-confirming, deleting
 *   and changing a subscription needs `admin` (tenant-wide: it spans the tenant's streams and
 *   makes the bus send requests out), plus `publish` on a pull-wake subscription's wake stream;
 *   reading one and claiming a wake need `consume` or `admin` (docs/security.md).
 */
import { Hono, type Context } from "hono";
import { decodeJwt } from "jose";
import {
  parseClaim,
  parseMembership,
  parseSubscriptionConfig,
  parseWakeRequest,
  SIGNING_OBJECT_NAME,
  SUBSCRIPTION_ID,
  topicNameProblemForStream,
  webhookUrlProblem,
  type WakeRequest,
} from "../../protocol/ds-subscriptions.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { unwrap } from "../../objects/rpc-result.ts";
import { subscriptionStub, type SettleKind } from "../../objects/subscription.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { may, permit } from "../middleware/permissions.ts";
import { jsonBody } from "../request-body.ts";
import { directoryStub } from "../topic-stub.ts";

/** Default and largest page of `GET /v1/stream/__ds/subscriptions`. */
const DEFAULT_LIST_LIMIT = 50;
const MAX_LIST_LIMIT = 100;

/** Largest control body (a configuration with 1,000 explicit streams fits). */
export const MAX_CONTROL_BODY_BYTES = 256 * 1024;
/** JWKS answers may be cached this long (protocol 6.5). */
export const JWKS_MAX_AGE_S = 300;

/** Webhook receivers on this machine are allowed only under `npm run dev` (scripts/dev.mjs binds DOVETAIL_STORAGE, and only it). */
function localDevelopment(c: Context<GatewayEnv>): boolean {
  return (c.env as unknown as { DOVETAIL_STORAGE?: unknown }).DOVETAIL_STORAGE !== undefined;
}

/** The stream root URL of this request (`https://host/v1/stream`), for `jwks_url` and `callback_url`. */
function streamRoot(c: Context<GatewayEnv>): string {
  return `${new URL(c.req.url).origin}/v1/stream`;
}

function subscriptionId(c: Context<GatewayEnv>): string {
  const id = c.req.param("id") ?? "";
  if (!SUBSCRIPTION_ID.test(id)) throw new DovetailError("invalid_field", "subscription id: 1–128 characters of A-Z a-z 0-9 _ . -");
  return id;
}

function bearer(c: Context<GatewayEnv>): string {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(c.req.header("Authorization") ?? "");
  if (!m) throw new DovetailError("unauthorized", "send the wake's token as Authorization: Bearer <token>");
  return m[1]!;
}

/** Routes that carry no credential: the JWK Set, and the wake-token routes. */
export function dsTokenRoutes(): Hono<GatewayEnv> {
  const ds = new Hono<GatewayEnv>();
  ds.get("/jwks.json", async (c) => {
    const signing = c.env.DS_SIGNING.get(c.env.DS_SIGNING.idFromName(SIGNING_OBJECT_NAME));
    return c.body(JSON.stringify(await signing.jwks()), 200, {
      "content-type": "application/jwk-set+json",
      "cache-control": `public, max-age=${JWKS_MAX_AGE_S}`,
    });
  });
  for (const kind of ["callback", "ack", "release"] as const satisfies readonly SettleKind[]) {
    ds.post(`/subscriptions/:id/${kind}`, async (c) => {
      const id = subscriptionId(c);
      const token = bearer(c);
      let claims: { tn?: unknown; sid?: unknown };
      try {
        claims = decodeJwt(token);
      } catch {
        throw new DovetailError("unauthorized", "the token is not a token of a subscription");
      }
      if (typeof claims.tn !== "string" || claims.sid !== id) throw new DovetailError("unauthorized", "the token is not a token of this subscription");
      const parsed = parseWakeRequest(await jsonBody(c, MAX_CONTROL_BODY_BYTES));
      if ("error" in parsed) throw new DovetailError("invalid_field", parsed.error);
      const request: WakeRequest = parsed.request;
      const result = unwrap(await subscriptionStub(c.env, claims.tn, id).settle(kind, token, request));
      return result === null ? c.body(null, 204) : c.json(result);
    });
  }
  return ds;
}

/** Routes behind the gateway's auth(): the subscription itself, its streams, and claims. */
export function dsSubscriptionRoutes(): Hono<GatewayEnv> {
  const ds = new Hono<GatewayEnv>();
  const manage = permit("admin", null);
  const read = permit(["consume", "admin"], null);

  ds.put("/subscriptions/:id", manage, async (c) => {
    const id = subscriptionId(c);
    const parsed = parseSubscriptionConfig(await jsonBody(c, MAX_CONTROL_BODY_BYTES));
    if ("error" in parsed) throw new DovetailError("invalid_field", parsed.error);
    const { config } = parsed;
    if (config.webhookUrl !== null) {
      const problem = webhookUrlProblem(config.webhookUrl, localDevelopment(c));
      if (problem) throw new DovetailError("WEBHOOK_URL_REJECTED", problem);
    }
    if (config.wakeStream !== null && !may(c, "publish", config.wakeStream)) {
      throw new DovetailError("forbidden", `this credential may not publish to the wake stream ${config.wakeStream}`);
    }
    const { created, view } = unwrap(await subscriptionStub(c.env, c.get("tenant"), id).put(config, streamRoot(c)));
    return c.json(view, created ? 201 : 200);
  });

  /**
   * The tenant's subscriptions, a page at a time in id order (`?cursor=&limit=`): a Dovetail
   * extension (the protocol defines no list), for `dovetail subs ls`. The Directory keeps the ids.
   */
  ds.get("/subscriptions", read, async (c) => {
    const raw = c.req.query("limit");
    const limit = raw === undefined ? DEFAULT_LIST_LIMIT : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)
      throw new DovetailError("invalid_field", `limit: expected an integer from 1 to ${MAX_LIST_LIMIT}`);
    const tenant = c.get("tenant");
    const page = await directoryStub(c.env, tenant).dsSubscriptions(c.req.query("cursor") ?? null, limit);
    const views = await Promise.all(page.ids.map(async (id) => subscriptionStub(c.env, tenant, id).get()));
    // One deleted between the two reads is left out.
    return c.json({ subscriptions: views.flatMap((v) => (v.ok ? [v.value] : [])), cursor: page.cursor });
  });

  ds.get("/subscriptions/:id", read, async (c) => {
    return c.json(unwrap(await subscriptionStub(c.env, c.get("tenant"), subscriptionId(c)).get()));
  });

  ds.delete("/subscriptions/:id", manage, async (c) => {
    unwrap(await subscriptionStub(c.env, c.get("tenant"), subscriptionId(c)).remove());
    return c.body(null, 204);
  });

  ds.post("/subscriptions/:id/streams", manage, async (c) => {
    const id = subscriptionId(c);
    const parsed = parseMembership(await jsonBody(c, MAX_CONTROL_BODY_BYTES));
    if ("error" in parsed) throw new DovetailError("invalid_field", parsed.error);
    unwrap(await subscriptionStub(c.env, c.get("tenant"), id).addStreams(parsed.streams));
    return c.body(null, 204);
  });

  ds.delete("/subscriptions/:id/streams/:path{.+}", manage, async (c) => {
    const id = subscriptionId(c);
    let path: string;
    try {
      path = decodeURIComponent(new URL(c.req.url).pathname.split("/streams/").slice(1).join("/streams/"));
    } catch {
      throw new DovetailError("invalid_field", "stream path is not valid percent-encoding");
    }
    const problem = topicNameProblemForStream(path);
    if (problem) throw new DovetailError("invalid_field", `stream path: ${problem}`);
    unwrap(await subscriptionStub(c.env, c.get("tenant"), id).removeStream(path));
    return c.body(null, 204);
  });

  ds.post("/subscriptions/:id/claim", read, async (c) => {
    const id = subscriptionId(c);
    const parsed = parseClaim(await jsonBody(c, MAX_CONTROL_BODY_BYTES));
    if ("error" in parsed) throw new DovetailError("invalid_field", parsed.error);
    return c.json(unwrap(await subscriptionStub(c.env, c.get("tenant"), id).claim(parsed.worker)));
  });
  return ds;
}
