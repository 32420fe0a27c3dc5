/**
 * The admin API client: create, list and revoke the API keys of the caller's tenant
 * (docs/security.md, "Admin API"; routes in workers/routes/admin.ts). Every call needs a
 * credential with the scope `admin:>`; keys are always created in the caller's own tenant.
 * The `dovetail keys` commands are built on it.
 *
 * Plain HTTP (`fetch`), no sockets, so there is nothing to close.
 */
import { z } from "zod";
import { DovetailError } from "../../protocol/errors.ts";
import { busBases, requestJson } from "./http.ts";
import type { FetchLike } from "./transport.ts";
import type { GroupInfo } from "../../protocol/groups.ts";
import { topicNameProblem } from "../../protocol/topic-name.ts";
import type { TenantMetrics } from "../../protocol/metrics.ts";

export type { TenantMetrics };

const countsSchema = z.record(z.string(), z.number());
const histogramSchema = z.object({ buckets: z.array(z.number()), sum: z.number(), count: z.number() });
/** `GET /metrics?format=json` (docs/observability.md); fields added later are kept. */
const tenantMetricsSchema = z.object({
  topics: z.array(
    z.looseObject({
      name: z.string(),
      messages: z.number(),
      bytes: z.number(),
      subscribers: z.number(),
      head: z.number(),
      counters: z.looseObject({
        published: z.number(),
        delivered: z.number(),
        commits: z.number(),
        backpressure: z.number(),
        dlq: z.number(),
        failures: countsSchema,
        rateLimited: countsSchema,
        publishDuration: histogramSchema,
        deliveryDuration: histogramSchema,
        commitDuration: histogramSchema,
      }),
      gauges: z.looseObject({
        connections: z.number(),
        subscribers: z.number(),
        groups: z.array(z.object({ group: z.string(), lag: z.number(), pending: z.number() })),
      }),
    }),
  ),
  gateway: z.object({ rateLimited: countsSchema, authFailures: countsSchema }),
});

/** Names of the per-key rate limits (docs/security.md, "Rate limits"), in the API's order. */
export const KEY_RATE_FIELDS = [
  "requestsPerSecond",
  "burst",
  "framesPerSecond",
  "frameBurst",
  "bytesPerSecond",
  "byteBurst",
  "topicMessagesPerSecond",
  "topicMessageBurst",
] as const;
export type KeyRateField = (typeof KEY_RATE_FIELDS)[number];

/** A key's effective rate limits: the defaults merged with what was asked for at creation. */
export type KeyRate = Record<KeyRateField, number>;

const rateSchema = z.object(Object.fromEntries(KEY_RATE_FIELDS.map((f) => [f, z.number()])) as Record<KeyRateField, z.ZodNumber>);

// Receivers ignore fields they do not know (fields may be added to the API in a minor revision).
const keyRecordSchema = z.object({
  id: z.string(),
  name: z.string(),
  tenant: z.string(),
  scopes: z.array(z.string()),
  rate: rateSchema,
  createdAt: z.number(),
  expiresAt: z.number().nullable(),
  revokedAt: z.number().nullable(),
});
const createdKeySchema = keyRecordSchema.extend({ key: z.string() });
const revokedKeySchema = keyRecordSchema.extend({ closedSockets: z.number() });
const keyListSchema = z.object({ keys: z.array(keyRecordSchema) });

/** A key as the admin API shows it: never the secret, never its hash. Times in ms since the epoch. */
export type KeyRecord = z.infer<typeof keyRecordSchema>;
/** What `keys.create()` returns: the record plus `key`, the only time the secret is shown. */
export type CreatedKey = z.infer<typeof createdKeySchema>;
/** What `keys.revoke()` returns: the record (with `revokedAt`) and how many live sockets were closed. */
export type RevokedKey = z.infer<typeof revokedKeySchema>;

export interface CreateKeyOptions {
  /** A label for people, 1 to 100 characters; need not be unique. */
  name: string;
  /** 1 to 64 scopes, `action:pattern` or a bare action (docs/security.md, "Scopes and topic patterns"). */
  scopes: string[];
  /** Overrides of the default rate limits; any subset. */
  rate?: Partial<KeyRate>;
  /** Expiry in ms since the epoch; `null` or absent: never expires. Not with `expiresInMs`. */
  expiresAt?: number | null;
  /** Expiry relative to now, in ms. Not with `expiresAt`. */
  expiresInMs?: number;
}

export interface AdminOptions {
  /** A credential with `admin:>`, sent as `Authorization: Bearer`. */
  token?: string;
  /** `fetch` for the HTTP API. Default: the global `fetch`. */
  fetch?: FetchLike;
}

/** The key operations of an {@link AdminClient}. */
export interface KeysAdmin {
  /**
   * Issue a key in the caller's tenant. The returned `key` (`dvt_<id>_<secret>`) is shown only
   * this once: the bus stores its hash.
   *
   * @example
   * const { key, id } = await admin.keys.create({ name: "agent-1", scopes: ["publish:agents.*"], expiresInMs: 86_400_000 });
   */
  create(options: CreateKeyOptions): Promise<CreatedKey>;
  /**
   * Every key of the caller's tenant, oldest first, revoked ones included (with `revokedAt`).
   *
   * @example
   * const active = (await admin.keys.list()).filter((k) => k.revokedAt === null);
   */
  list(): Promise<KeyRecord[]>;
  /**
   * Revoke a key by its id (the 16 hex characters after `dvt_`). Takes effect at once: new
   * requests with the key get `unauthorized`, and its open sockets are closed (4401).
   * Fails with `not_found` when the tenant has no such key; revoking twice is allowed.
   *
   * @example
   * const { closedSockets } = await admin.keys.revoke("0123456789abcdef");
   */
  revoke(id: string): Promise<RevokedKey>;
}

/** Where a group moves on reset: an offset, `earliest`, `latest`, or the first message at or after a time. */
export type GroupPosition = number | "earliest" | "latest" | { time: number };

/**
 * The consumer-group operations that need `admin` on the topic (docs/groups.md). Inspecting and
 * creating groups needs only `consume`: `bus.groups()`, `bus.group()`, `bus.createGroup()`.
 */
export interface GroupsAdmin {
  /**
   * Delete a group: its position and pending jobs; its members' consumers end with `group_deleted`.
   *
   * @example
   * await admin.groups.delete("jobs", "resizers");
   */
  delete(topic: string, group: string): Promise<{ deleted: true; closedMembers: number }>;
  /**
   * Move a group to `to`: everything pending is forgotten.
   *
   * @example
   * await admin.groups.reset("jobs", "resizers", "earliest");
   */
  reset(topic: string, group: string, to: GroupPosition): Promise<GroupInfo>;
  /**
   * Deliver a group's dead letters again, reading a page of its dead-letter topic from `from`.
   *
   * @example
   * const { replayed, next } = await admin.groups.replay("jobs", "resizers", { from: 0, limit: 100 });
   */
  replay(topic: string, group: string, page?: { from?: number; limit?: number }): Promise<{ replayed: number; read: number; next: number }>;
}

/**
 * A client for the bus's admin API. Make one with {@link connectAdmin}.
 *
 * @example
 * const admin = connectAdmin("http://127.0.0.1:8787", { token: adminToken });
 * const { key } = await admin.keys.create({ name: "agent-1", scopes: ["publish:agents.*", "subscribe:agents.>"] });
 */
export class AdminClient {
  readonly url: string;
  readonly keys: KeysAdmin;
  readonly groups: GroupsAdmin;
  /**
   * The tenant's metrics as data: every topic's counters (since the Directory first heard of it),
   * gauges and stats, and the gateway's refusal counts (docs/observability.md). `dovetail top`
   * shows them; Prometheus reads the same figures as text from `GET /metrics`.
   *
   * @example
   * const { topics } = await admin.metrics();
   * for (const t of topics) console.log(t.name, t.counters.published, t.gauges.groups);
   */
  readonly metrics: () => Promise<TenantMetrics>;
  readonly #httpBase: string;
  readonly #options: AdminOptions;

  /** @internal use {@link connectAdmin} */
  constructor(url: string, options: AdminOptions = {}) {
    this.url = url;
    this.#httpBase = busBases(url).httpBase;
    this.#options = options;
    this.keys = {
      create: async (input) => answer(createdKeySchema, await this.#http("POST", "/keys", createBody(input)), "POST /v1/admin/keys"),
      list: async () => answer(keyListSchema, await this.#http("GET", "/keys"), "GET /v1/admin/keys").keys,
      revoke: async (id) => answer(revokedKeySchema, await this.#http("DELETE", `/keys/${encodeURIComponent(id)}`), "DELETE /v1/admin/keys/{id}"),
    };
    this.metrics = async () =>
      answer(tenantMetricsSchema, await requestJson(this.#options, this.#httpBase, "GET", "/metrics?format=json"), "GET /metrics") as TenantMetrics;
    this.groups = {
      delete: async (topic, group) => (await this.#group("DELETE", topic, group, "")) as { deleted: true; closedMembers: number },
      reset: async (topic, group, to) => (await this.#group("POST", topic, group, "/reset", { to })) as GroupInfo,
      replay: async (topic, group, page = {}) => (await this.#group("POST", topic, group, "/replay", page)) as { replayed: number; read: number; next: number },
    };
  }

  #http(method: string, suffix: string, body?: unknown): Promise<unknown> {
    return requestJson(this.#options, this.#httpBase, method, `/v1/admin${suffix}`, body);
  }

  #group(method: string, topic: string, group: string, suffix: string, body?: unknown): Promise<unknown> {
    const problem = topicNameProblem(topic);
    if (problem) return Promise.reject(new DovetailError("invalid_topic", problem));
    return requestJson(this.#options, this.#httpBase, method, `/v1/topics/${encodeURIComponent(topic)}/groups/${encodeURIComponent(group)}${suffix}`, body);
  }
}

/** Check a successful answer's shape; a bus that answers otherwise is not one this SDK speaks to. */
function answer<S extends z.ZodType>(schema: S, raw: unknown, route: string): z.infer<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DovetailError(
      "internal",
      `unexpected answer from ${route}: ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`,
      {},
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/** The request body of POST /v1/admin/keys: only the fields that were given. */
function createBody(input: CreateKeyOptions): Record<string, unknown> {
  return {
    name: input.name,
    scopes: input.scopes,
    ...(input.rate !== undefined ? { rate: input.rate } : {}),
    ...(input.expiresAt !== undefined ? { expiresAt: input.expiresAt } : {}),
    ...(input.expiresInMs !== undefined ? { expiresInMs: input.expiresInMs } : {}),
  };
}

/**
 * A client for the admin API of the bus at `url` (http(s) or ws(s)). Lazy: nothing is sent until
 * a method is called.
 *
 * @example
 * import { connectAdmin } from "@dovetail/sdk/admin";
 * const admin = connectAdmin("http://127.0.0.1:8787", { token: process.env.DOVETAIL_TOKEN });
 * for (const k of await admin.keys.list()) console.log(k.id, k.name, k.scopes.join(" "));
 */
export function connectAdmin(url: string, options: AdminOptions = {}): AdminClient {
  return new AdminClient(url, options);
}
