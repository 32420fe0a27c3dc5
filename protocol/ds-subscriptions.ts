/**
 * Durable Streams subscriptions (protocol sections 6 and 7; docs/streams.md "Subscriptions"):
 * the bodies of the `__ds` control APIs as the server checks them, the glob matcher over stream
 * paths, the webhook URL rule (SSRF, protocol 12.8), the configuration hash, and how subscription
 * objects are named. Server side: it builds zod schemas, so clients import only its types.
 *
 * @example
 * const parsed = parseSubscriptionConfig(await c.req.json());
 * if ("error" in parsed) throw new DovetailError("invalid_field", parsed.error);
 * globMatches("events/*", "events/abc"); // true
 */
import { z } from "zod";
import { topicNameProblem } from "./topic-name.ts";

/** The reserved first path segment of the control APIs (routed before streams). */
export const DS_PREFIX = "__ds";
export const DEFAULT_LEASE_TTL_MS = 30_000;
export const MIN_LEASE_TTL_MS = 1_000;
export const MAX_LEASE_TTL_MS = 600_000;
/** Most explicit streams one subscription may name. */
export const MAX_EXPLICIT_STREAMS = 1_000;
export const MAX_DESCRIPTION_LENGTH = 1_000;
export const MAX_WEBHOOK_URL_LENGTH = 2_048;
/** Subscription ids: 1–128 characters of `A-Z a-z 0-9 _ . -` (the path segment under `subscriptions/`). */
export const SUBSCRIPTION_ID = /^[A-Za-z0-9_.-]{1,128}$/;
/** Most characters of a worker name in a claim. */
export const MAX_WORKER_LENGTH = 200;

/** Durable Object name of a tenant's subscription (tenant names cannot hold `:`). */
export function subscriptionObjectName(tenant: string, id: string): string {
  return `${tenant}:${id}`;
}

/** Tenant and id of a subscription object's name, or null when it is not one. */
export function parseSubscriptionObjectName(name: string | undefined): { tenant: string; id: string } | null {
  const i = name?.indexOf(":") ?? -1;
  if (name === undefined || i <= 0 || i === name.length - 1) return null;
  return { tenant: name.slice(0, i), id: name.slice(i + 1) };
}

/** The one object that holds the deployment's webhook signing key. */
export const SIGNING_OBJECT_NAME = "webhook-signing";

/** Why `pattern` is not a stream glob (segments of topic-name characters, `*` or `**`), or null. */
export function globProblem(pattern: string): string | null {
  if (pattern.length === 0 || pattern.length > 200) return "pattern must be 1–200 characters";
  for (const segment of pattern.split("/")) {
    if (segment === "*" || segment === "**") continue;
    if (!/^[A-Za-z0-9_~.-]+$/.test(segment) || segment.startsWith(".") || segment.endsWith(".") || segment.includes("..")) {
      return `pattern segment ${JSON.stringify(segment).slice(0, 40)} must be *, ** or a stream path segment`;
    }
  }
  return null;
}

/**
 * Does the glob match the stream path? Segments are separated by `/`; `*` matches one segment,
 * `**` zero or more (protocol 6.2).
 *
 * @example
 * globMatches("events/**", "events") // true
 * globMatches("events/*", "events/a/b") // false
 */
export function globMatches(pattern: string, path: string): boolean {
  const p = pattern.split("/");
  const s = path.split("/");
  const memo = new Map<number, boolean>();
  const at = (i: number, j: number): boolean => {
    const key = i * (s.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === p.length) result = j === s.length;
    else if (p[i] === "**") result = at(i + 1, j) || (j < s.length && at(i, j + 1));
    else result = j < s.length && (p[i] === "*" || p[i] === s[j]) && at(i + 1, j + 1);
    memo.set(key, result);
    return result;
  };
  return at(0, 0);
}

/** Is the IPv4 literal in a range a webhook may not target (RFC 1918, loopback, link-local, CGNAT, this network, multicast, reserved)? */
function blockedIpv4(host: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return (
    a === 0 ||
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 192 && b === 0) ||
    (a === 198 && (b === 18 || b === 19)) ||
    a >= 224
  );
}

/** Is the IPv6 literal (without brackets) loopback, unspecified, unique-local, link-local or IPv4-mapped? */
function blockedIpv6(host: string): boolean {
  const h = host.toLowerCase();
  return h === "::" || h === "::1" || /^f[cd]/.test(h) || /^fe[89ab]/.test(h) || h.startsWith("::ffff:") || h.startsWith("64:ff9b:");
}

/**
 * Why a webhook URL is refused (protocol 6.2 and 12.8), or null. `https://` only, with no host that
 * names this machine or a private network; in local development (`allowLocalHttp`) also
 * `http://localhost` and `http://127.0.0.x`. Names are not resolved here: a public name that
 * resolves to a private address is the platform's to stop (Workers' outbound fetch does not reach
 * private networks).
 *
 * @example
 * webhookUrlProblem("http://10.0.0.1/hook", false) // "…private…"
 * webhookUrlProblem("http://127.0.0.1:9000/h", true) // null
 */
export function webhookUrlProblem(raw: string, allowLocalHttp: boolean): string | null {
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) return `webhook.url is longer than ${MAX_WEBHOOK_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "webhook.url is not a URL";
  }
  if (url.username !== "" || url.password !== "") return "webhook.url may not carry credentials";
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const localDev = host === "localhost" || /^127\.0\.0\.\d{1,3}$/.test(host);
  if (url.protocol === "http:" && allowLocalHttp && localDev) return null;
  if (url.protocol !== "https:")
    return allowLocalHttp ? "webhook.url must be https:// (or http://localhost, http://127.0.0.x in local development)" : "webhook.url must be https://";
  if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".local") || host.endsWith(".internal")) {
    return allowLocalHttp && localDev ? null : "webhook.url may not target this machine or a local network name";
  }
  if (blockedIpv4(host) || (host.includes(":") && blockedIpv6(host))) return "webhook.url may not target private, loopback, link-local or metadata addresses";
  return null;
}

/** Why `path` cannot be a subscription's stream (a topic name outside `__ds`), or null. */
export function topicNameProblemForStream(path: string): string | null {
  const problem = topicNameProblem(path);
  if (problem) return problem;
  return path === DS_PREFIX || path.startsWith(`${DS_PREFIX}/`) ? "streams under __ds are reserved" : null;
}

const streamPath = z.string().superRefine((v, ctx) => {
  const problem = topicNameProblem(v);
  if (problem) ctx.addIssue({ code: "custom", message: `stream ${JSON.stringify(v).slice(0, 60)}: ${problem}` });
  else if (v === DS_PREFIX || v.startsWith(`${DS_PREFIX}/`)) ctx.addIssue({ code: "custom", message: "streams under __ds are reserved" });
});

const configSchema = z
  .object({
    type: z.enum(["webhook", "pull-wake"]),
    pattern: z
      .string()
      .superRefine((v, ctx) => {
        const problem = globProblem(v);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .optional(),
    streams: z.array(streamPath).max(MAX_EXPLICIT_STREAMS).optional(),
    webhook: z.object({ url: z.string() }).strict().optional(),
    wake_stream: streamPath.optional(),
    lease_ttl_ms: z.number().int().min(MIN_LEASE_TTL_MS).max(MAX_LEASE_TTL_MS).optional(),
    description: z.string().max(MAX_DESCRIPTION_LENGTH).optional(),
  })
  .strict();

/** A subscription's configuration, normalized: what its hash covers (protocol 6.2). */
export interface SubscriptionConfig {
  type: "webhook" | "pull-wake";
  pattern: string | null;
  /** Sorted, without duplicates. */
  streams: string[];
  webhookUrl: string | null;
  wakeStream: string | null;
  leaseTtlMs: number;
  description: string | null;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const path = issue.path.join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}

/**
 * Check and normalize a `PUT …/subscriptions/:id` body. The webhook URL's safety is checked
 * apart ({@link webhookUrlProblem}), because it has its own code.
 */
export function parseSubscriptionConfig(body: unknown): { config: SubscriptionConfig } | { error: string } {
  const parsed = configSchema.safeParse(body);
  if (!parsed.success) return { error: firstIssue(parsed.error) };
  const v = parsed.data;
  if (v.pattern === undefined && (v.streams === undefined || v.streams.length === 0)) return { error: "give a pattern, streams, or both" };
  if (v.type === "webhook" && v.webhook === undefined) return { error: "webhook.url: required for type webhook" };
  if (v.type === "webhook" && v.wake_stream !== undefined) return { error: "wake_stream: only for type pull-wake" };
  if (v.type === "pull-wake" && v.wake_stream === undefined) return { error: "wake_stream: required for type pull-wake" };
  if (v.type === "pull-wake" && v.webhook !== undefined) return { error: "webhook: only for type webhook" };
  if (v.wake_stream !== undefined && (v.streams?.includes(v.wake_stream) || (v.pattern !== undefined && globMatches(v.pattern, v.wake_stream)))) {
    return { error: "wake_stream: may not be one of the subscription's own streams (each wake would wake it again)" };
  }
  return {
    config: {
      type: v.type,
      pattern: v.pattern ?? null,
      streams: [...new Set(v.streams ?? [])].sort(),
      webhookUrl: v.webhook?.url ?? null,
      wakeStream: v.wake_stream ?? null,
      leaseTtlMs: v.lease_ttl_ms ?? DEFAULT_LEASE_TTL_MS,
      description: v.description ?? null,
    },
  };
}

/** The text a configuration's hash is taken over: its fields in a fixed order. */
export function configText(config: SubscriptionConfig): string {
  return JSON.stringify([config.type, config.pattern, config.streams, config.webhookUrl, config.wakeStream, config.leaseTtlMs, config.description]);
}

const membershipSchema = z.object({ streams: z.array(streamPath).min(1).max(MAX_EXPLICIT_STREAMS) }).strict();

/** A `POST …/streams` body: the explicit streams to link. */
export function parseMembership(body: unknown): { streams: string[] } | { error: string } {
  const parsed = membershipSchema.safeParse(body);
  return parsed.success ? { streams: [...new Set(parsed.data.streams)] } : { error: firstIssue(parsed.error) };
}

const ackSchema = z.object({ stream: z.string().min(1).max(200), offset: z.string().min(1).max(64) }).strict();
const wakeRequestSchema = z
  .object({
    wake_id: z.string().min(1).max(100),
    generation: z.number().int().min(1),
    acks: z.array(ackSchema).max(MAX_EXPLICIT_STREAMS).optional(),
    done: z.boolean().optional(),
  })
  .strict();

/** A callback, ack or release body (protocol 7.1, 7.2). */
export interface WakeRequest {
  wake_id: string;
  generation: number;
  acks: { stream: string; offset: string }[];
  done: boolean;
}

export function parseWakeRequest(body: unknown): { request: WakeRequest } | { error: string } {
  const parsed = wakeRequestSchema.safeParse(body);
  if (!parsed.success) return { error: firstIssue(parsed.error) };
  return { request: { wake_id: parsed.data.wake_id, generation: parsed.data.generation, acks: parsed.data.acks ?? [], done: parsed.data.done ?? false } };
}

const claimSchema = z.object({ worker: z.string().min(1).max(MAX_WORKER_LENGTH) }).strict();

export function parseClaim(body: unknown): { worker: string } | { error: string } {
  const parsed = claimSchema.safeParse(body);
  return parsed.success ? parsed.data : { error: firstIssue(parsed.error) };
}

/** One linked stream as the APIs report it. */
export interface StreamLinkView {
  path: string;
  link_type: "glob" | "explicit";
  acked_offset: string;
}

/** A linked stream in a wake or claim: its cursor and tail. */
export interface WakeStreamView extends StreamLinkView {
  tail_offset: string;
  has_pending: boolean;
}

/** `GET …/subscriptions/:id` (protocol 6.3). */
export interface SubscriptionView {
  id: string;
  subscription_id: string;
  type: "webhook" | "pull-wake";
  pattern: string | null;
  streams: StreamLinkView[];
  webhook?: { url: string; signing: { alg: "ed25519"; kid: string; jwks_url: string } };
  wake_stream: string | null;
  lease_ttl_ms: number;
  created_at: string;
  status: "active" | "failed";
  description: string | null;
}

/** A successful claim (protocol 7.2). */
export interface ClaimView {
  wake_id: string;
  generation: number;
  token: string;
  streams: WakeStreamView[];
  lease_ttl_ms: number;
}

/** The webhook request body (protocol 7.1). */
export interface WebhookBody {
  subscription_id: string;
  wake_id: string;
  generation: number;
  streams: WakeStreamView[];
  callback_url: string;
  callback_token: string;
}

/** The wake event appended to a pull-wake subscription's `wake_stream` (protocol 7.2). */
export interface WakeEvent {
  type: "wake";
  subscription_id: string;
  stream: string;
  generation: number;
  ts: number;
}
