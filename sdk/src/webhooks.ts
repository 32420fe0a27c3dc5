/**
 * `@dovetail/sdk/webhooks`: verify the webhook a Durable Streams subscription sends (protocol 7.1
 * and 12.10; docs/streams.md "Subscriptions"), in a Worker, in Node >= 22 or anywhere WebCrypto
 * has Ed25519. A subpath of its own, so a receiver imports this and nothing else of the SDK.
 *
 * The bus signs `<t>.<raw body>` with Ed25519 and sends
 * `Webhook-Signature: t=<unix seconds>,kid=<key id>,ed25519=<unpadded base64url signature>`; the
 * public key of that `kid` is in the bus's JWK Set, `GET /v1/stream/__ds/jwks.json`.
 *
 * @example
 * import { verifyWebhook } from "@dovetail/sdk/webhooks";
 * export default {
 *   async fetch(request: Request, env: { DOVETAIL_URL: string }) {
 *     const wake = await verifyWebhook(request, { jwksUrl: `${env.DOVETAIL_URL}/v1/stream/__ds/jwks.json`, subscriptionId: "orders-agent" });
 *     // read wake.body.streams from their acked_offset, then call wake.body.callback_url
 *     return Response.json({ done: true });
 *   },
 * };
 */
import { DovetailError } from "../../protocol/errors.ts";
import type { WakeStreamView, WebhookBody } from "../../protocol/ds-subscriptions.ts";
import type { FetchLike } from "./transport.ts";

export type { WakeStreamView, WebhookBody };

/** How far a signature's timestamp may be from this clock, either way, by default: 5 minutes. */
export const DEFAULT_MAX_SKEW_MS = 300_000;
/** How long a JWK Set fetched from `jwksUrl` is used before it is fetched again (the bus says `max-age=300`). */
export const JWKS_CACHE_MS = 300_000;

/** One public key of the JWK Set (Ed25519: `kty` OKP, `crv` Ed25519, `x`). */
export interface WebhookJwk {
  kty: string;
  crv?: string;
  kid?: string;
  x?: string;
}

export interface VerifyWebhookOptions {
  /** The JWK Set itself (`{ keys: [...] }`), e.g. fetched once at deploy. */
  jwks?: { keys: WebhookJwk[] };
  /** Where to fetch it: `<bus>/v1/stream/__ds/jwks.json` (no credential needed). Cached {@link JWKS_CACHE_MS}; fetched again for a `kid` it lacks. */
  jwksUrl?: string;
  /** The replay window: how far `t` may be from now, either way (default {@link DEFAULT_MAX_SKEW_MS}). */
  maxSkewMs?: number;
  /**
   * The subscription this receiver serves: a body naming another is refused. One key signs for
   * every tenant of a deployment, so a receiver must check it (protocol 12.10).
   */
  subscriptionId?: string;
  /** For fetching `jwksUrl` (default: the global fetch). */
  fetch?: FetchLike;
  /** The current time in ms (default `Date.now()`), for tests. */
  nowMs?: number;
}

/** A webhook whose signature checked out. */
export interface VerifiedWebhook {
  /** The wake: streams with their cursors and tails, `callback_url` and `callback_token`. */
  body: WebhookBody;
  /** The raw body the signature covers. */
  raw: string;
  kid: string;
  /** The signature's timestamp, unix seconds. */
  timestamp: number;
}

/** A webhook as a Node server sees it: its headers and the raw body, unparsed. */
export interface WebhookInput {
  headers: Headers | Record<string, string | string[] | undefined>;
  body: string | Uint8Array;
}

const jwksCache = new Map<string, { atMs: number; keys: WebhookJwk[] }>();

function refuse(message: string): DovetailError {
  return new DovetailError("unauthorized", `webhook refused: ${message}`);
}

function header(headers: WebhookInput["headers"], name: string): string | null {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name);
  for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? (v[0] ?? null) : (v ?? null);
  }
  return null;
}

function base64urlBytes(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  try {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** `t=…,kid=…,ed25519=…` into its parts, or null when it is not that. */
export function parseWebhookSignature(value: string): { t: number; kid: string; signature: Uint8Array<ArrayBuffer> } | null {
  const parts = new Map<string, string>();
  for (const part of value.split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) return null;
    parts.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  const t = parts.get("t") ?? "";
  const kid = parts.get("kid");
  const signature = base64urlBytes(parts.get("ed25519") ?? "");
  if (!/^\d{1,12}$/.test(t) || !kid || !signature || signature.byteLength !== 64) return null;
  return { t: Number(t), kid, signature };
}

async function keysFor(kid: string, options: VerifyWebhookOptions): Promise<WebhookJwk | undefined> {
  const inline = options.jwks?.keys.find((k) => k.kid === kid);
  if (inline || !options.jwksUrl) return inline;
  const url = options.jwksUrl;
  const now = Date.now();
  const cached = jwksCache.get(url);
  const hit = cached && now - cached.atMs < JWKS_CACHE_MS ? cached.keys.find((k) => k.kid === kid) : undefined;
  if (hit) return hit;
  const fetchFn = options.fetch ?? (globalThis.fetch as FetchLike);
  let keys: WebhookJwk[];
  try {
    const res = await fetchFn(url, { method: "GET" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    keys = ((await res.json()) as { keys?: WebhookJwk[] }).keys ?? [];
  } catch (error) {
    throw new DovetailError("closed", `cannot fetch the JWK Set ${url}: ${(error as Error).message ?? String(error)}`, {}, { cause: error });
  }
  jwksCache.set(url, { atMs: now, keys });
  return keys.find((k) => k.kid === kid);
}

/**
 * Check a webhook's `Webhook-Signature` (Ed25519 over `<t>.<raw body>`, the key of its `kid` in
 * the JWK Set), its timestamp against the replay window, and (with `subscriptionId`) whom it is
 * for; then answer its body. Reads the request's body. A webhook that fails any check rejects
 * with DovetailError `unauthorized` (answer it 401); a JWK Set that cannot be fetched with
 * `closed`.
 *
 * @example
 * // Node: http.createServer, raw body collected as a string
 * const wake = await verifyWebhook({ headers: req.headers, body: raw }, { jwksUrl, maxSkewMs: 60_000 });
 * for (const s of wake.body.streams) if (s.has_pending) console.log(s.path, s.acked_offset, "→", s.tail_offset);
 */
export async function verifyWebhook(input: Request | WebhookInput, options: VerifyWebhookOptions): Promise<VerifiedWebhook> {
  if (!options.jwks && !options.jwksUrl) throw new DovetailError("invalid_field", "verifyWebhook: give jwks or jwksUrl");
  const isRequest = typeof (input as Request).text === "function";
  const value = header(input.headers as WebhookInput["headers"], "webhook-signature");
  if (value === null) throw refuse("no Webhook-Signature header");
  const parsed = parseWebhookSignature(value);
  if (!parsed) throw refuse("Webhook-Signature is not t=<unix s>,kid=<kid>,ed25519=<base64url>");
  const skewMs = Math.abs((options.nowMs ?? Date.now()) - parsed.t * 1000);
  if (skewMs > (options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS)) throw refuse(`its timestamp is ${Math.round(skewMs / 1000)} s from now (replay window)`);
  const raw = isRequest
    ? await (input as Request).text()
    : typeof (input as WebhookInput).body === "string"
      ? ((input as WebhookInput).body as string)
      : new TextDecoder().decode((input as WebhookInput).body as Uint8Array);
  const jwk = await keysFor(parsed.kid, options);
  if (jwk?.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.x) throw refuse(`no Ed25519 key ${parsed.kid} in the JWK Set`);
  const key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, ["verify"]);
  const signed = new TextEncoder().encode(`${parsed.t}.${raw}`);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, parsed.signature, signed))) throw refuse("the signature does not match");
  let body: WebhookBody;
  try {
    body = JSON.parse(raw) as WebhookBody;
  } catch {
    throw refuse("the body is not JSON");
  }
  if (typeof body?.subscription_id !== "string" || !Array.isArray(body.streams)) throw refuse("the body is not a wake");
  if (options.subscriptionId !== undefined && body.subscription_id !== options.subscriptionId) {
    throw refuse(`it is for subscription ${body.subscription_id}, not ${options.subscriptionId}`);
  }
  return { body, raw, kid: parsed.kid, timestamp: parsed.t };
}
