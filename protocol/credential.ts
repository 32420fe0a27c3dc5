/**
 * What the gateway knows about the caller once a credential is verified, and the rate limits
 * that come with it. API keys (objects/keys.ts) and JWTs (./jwt.ts) both become a Credential.
 */
import { z } from "zod";
import type { Scope } from "./scopes.ts";

/** Tenant names: lowercase, digits, `_` and `-`, 1 to 64 characters. Never holds `:`. */
export const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The tenant everything belongs to when auth is off (`DOVETAIL_AUTH=off`). */
export const OPEN_TENANT = "default";

/**
 * Rate limits of one credential (docs/security.md, "Rate limits"). Requests are counted by the
 * gateway; frames and bytes per WebSocket connection by the topic object; topic messages per
 * credential and topic by the topic object.
 */
export interface RateConfig {
  /** HTTP requests (and WebSocket upgrades) per second, refilled continuously. */
  requestsPerSecond: number;
  /** Requests that may arrive at once after a quiet period. */
  burst: number;
  /** WebSocket frames per second, per connection. */
  framesPerSecond: number;
  frameBurst: number;
  /** WebSocket frame bytes per second, per connection. */
  bytesPerSecond: number;
  byteBurst: number;
  /** Messages this credential may publish to one topic per second (so one producer cannot starve the others). */
  topicMessagesPerSecond: number;
  topicMessageBurst: number;
}

/** Defaults for every credential that sets none (issue 5: 100 requests/s, burst 200). */
export const DEFAULT_RATE: RateConfig = {
  requestsPerSecond: 100,
  burst: 200,
  framesPerSecond: 1000,
  frameBurst: 2000,
  bytesPerSecond: 16 * 1024 * 1024,
  byteBurst: 32 * 1024 * 1024,
  topicMessagesPerSecond: 10_000,
  topicMessageBurst: 20_000,
};

const rate = z.number().positive().max(1e9);
/** Per-key overrides as the admin API and the JWT `rate` claim accept them: any subset. */
export const rateOverridesSchema = z
  .object({
    requestsPerSecond: rate,
    burst: rate,
    framesPerSecond: rate,
    frameBurst: rate,
    bytesPerSecond: rate,
    byteBurst: rate,
    topicMessagesPerSecond: rate,
    topicMessageBurst: rate,
  })
  .partial()
  .strict();
export type RateOverrides = z.infer<typeof rateOverridesSchema>;

export function rateWith(overrides: RateOverrides | undefined): RateConfig {
  return { ...DEFAULT_RATE, ...(overrides ?? {}) };
}

export interface Credential {
  /** Stable id: `key:<id>` for API keys, `jwt:<iss>:<sub>` for tokens, `open` when auth is off. */
  id: string;
  kind: "key" | "jwt" | "open";
  tenant: string;
  scopes: Scope[];
  /** `null` when nothing is limited (auth off). */
  rate: RateConfig | null;
  /** When the credential stops being valid (ms since the epoch), if it expires. */
  expiresAt?: number;
}

/** The credential every request carries when auth is off: everything allowed, nothing limited. */
export const OPEN_CREDENTIAL: Credential = {
  id: "open",
  kind: "open",
  tenant: OPEN_TENANT,
  scopes: [
    { action: "publish", pattern: ">" },
    { action: "subscribe", pattern: ">" },
    { action: "consume", pattern: ">" },
    { action: "admin", pattern: ">" },
  ],
  rate: null,
};

/** The API key id of credential `id` (`key:<id>`), or null for other credentials. */
export function apiKeyIdOf(id: string): string | null {
  return id.startsWith("key:") ? id.slice(4) : null;
}

/** WebSocket tag under which a topic object files sockets opened with credential `id`. */
export function credentialTag(id: string): string {
  return `cred:${id}`.slice(0, 256);
}
