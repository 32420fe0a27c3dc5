/**
 * Directory: the index of one tenant's topics, one Durable Object per tenant (named by the
 * tenant). Each topic object reports to it: once when the topic is created (before its first
 * write is acknowledged, so a topic that holds a message is always listed), when it is deleted,
 * and at most every {@link REPORT_INTERVAL_MS} while it is active, never on the publish path.
 *
 * What it answers:
 * - whether a topic exists, so the gateway answers reads of unknown topics without waking (and,
 *   in local workerd, creating) a topic object (issue 18: twenty HEADs made twenty SQLite files);
 * - the topics of the tenant, by prefix or by pattern (the one matcher of protocol/scopes.ts),
 *   with their last reported stats, a page at a time;
 * - an ordered feed of `created` / `deleted` events that other objects can follow from a sequence
 *   number;
 * - which pattern subscriptions are live ({@link patternWatch}): each topic created is matched
 *   against them (one pass of the scope matcher per pattern) and the feeds it matches are told at
 *   once (decision 030).
 *
 * @example
 * const dir = env.DIRECTORY.get(env.DIRECTORY.idFromName(tenant));
 * await dir.list({ prefix: "agents.", limit: 100 });
 */
import { DurableObject } from "cloudflare:workers";
import type { ObjectsEnv } from "./env.ts";
import { globMatches } from "../protocol/ds-subscriptions.ts";
import { topicMatches } from "../protocol/scopes.ts";
import type { TopicEntry, TopicPage } from "../protocol/topic-list.ts";
import {
  DEPLOYMENT_DIRECTORY,
  addCounters,
  addCounts,
  emptyGatewayCounters,
  normalizeCounters,
  type GatewayCounters,
  type TenantMetrics,
  type TopicGauges,
  type TopicMetricsReport,
} from "../protocol/metrics.ts";
import { logLine } from "../protocol/log-line.ts";

export type { TopicEntry };

const SCHEMA_VERSION = 1;
/** A topic reports its stats at most this often while active. */
export const REPORT_INTERVAL_MS = 5_000;
/** Most topics in one page of {@link Directory.list}. */
export const MAX_LIST_LIMIT = 1000;
/** Events kept for followers; older ones are dropped (a follower that falls further behind re-lists). */
export const MAX_EVENTS = 10_000;

export type TopicStats = Pick<TopicEntry, "lastActive" | "head" | "messages" | "bytes" | "subscribers">;

export interface ListQuery {
  /** Names starting with this. */
  prefix?: string;
  /** Names matching this topic pattern (`*` one segment, `>` the rest). */
  pattern?: string;
  /** Names after this one (the `cursor` of the previous page). */
  after?: string;
  limit?: number;
}

export type ListPage = TopicPage;

export interface DirectoryEvent {
  seq: number;
  kind: "created" | "deleted";
  topic: string;
  at: number;
}

interface Row extends Record<string, SqlStorageValue> {
  name: string;
  created_at: number;
  last_active: number;
  head: number;
  messages: number;
  bytes: number;
  subscribers: number;
  reported_at: number;
}

function toEntry(r: Row): TopicEntry {
  return {
    name: r.name,
    createdAt: r.created_at,
    lastActive: r.last_active,
    head: r.head,
    messages: r.messages,
    bytes: r.bytes,
    subscribers: r.subscribers,
    reportedAt: r.reported_at,
  };
}

/**
 * The Directory tells pattern subscriptions about new topics, and reaches the deployment's
 * Directory (a tenant's lists itself there, for the operator's `GET /metrics`).
 */
type DirectoryEnv = Pick<ObjectsEnv, "PATTERN_FEED" | "DIRECTORY">;

/** A topic listed for a pattern subscription: its name, and when it was created. */
export interface MatchedTopic {
  name: string;
  createdAt: number;
}

export class Directory extends DurableObject<DirectoryEnv> {
  readonly #sql: SqlStorage;
  /** This tenant is listed in the deployment's Directory (checked once per wake). */
  #listedInDeployment = false;

  constructor(ctx: DurableObjectState, env: DirectoryEnv) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_topics (
      name TEXT PRIMARY KEY, created_at INTEGER NOT NULL, last_active INTEGER NOT NULL,
      head INTEGER NOT NULL, messages INTEGER NOT NULL, bytes INTEGER NOT NULL,
      subscribers INTEGER NOT NULL, reported_at INTEGER NOT NULL) WITHOUT ROWID`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, topic TEXT NOT NULL, at INTEGER NOT NULL)`);
    // Durable Streams subscriptions' watches (decision 027): a glob or an explicit stream path.
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_ds_watch (
      sub TEXT NOT NULL, pattern TEXT NOT NULL, glob INTEGER NOT NULL, PRIMARY KEY (sub, pattern)) WITHOUT ROWID`);
    this.#sql.exec(`CREATE INDEX IF NOT EXISTS dd_ds_watch_pattern ON dd_ds_watch (pattern)`);
    // The tenant's Durable Streams subscriptions, for listing them (a subscription may watch nothing for a while).
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_ds_subs (sub TEXT PRIMARY KEY, created_at INTEGER NOT NULL) WITHOUT ROWID`);
    // Live pattern subscriptions (decision 030): each feed object and the pattern it follows.
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_pattern_watch (feed TEXT PRIMARY KEY, pattern TEXT NOT NULL) WITHOUT ROWID`);
    // Metrics (docs/observability.md): each topic's summed counters and last gauges; the
    // gateway's counts (rate limits here, auth failures and the tenant list in the deployment's).
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_metrics (name TEXT PRIMARY KEY, counters TEXT NOT NULL, gauges TEXT NOT NULL) WITHOUT ROWID`);
    this.#sql.exec(
      `CREATE TABLE IF NOT EXISTS dd_gateway_counts (kind TEXT NOT NULL, reason TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (kind, reason)) WITHOUT ROWID`,
    );
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dd_tenants (tenant TEXT PRIMARY KEY) WITHOUT ROWID`);
    const version = this.#sql.exec<{ v: number }>(`SELECT v FROM dd_meta WHERE k = 'schema'`).toArray()[0]?.v;
    if (version === undefined) this.#sql.exec(`INSERT INTO dd_meta (k, v) VALUES ('schema', ?)`, SCHEMA_VERSION);
    else if (version !== SCHEMA_VERSION) throw new Error(`directory: schema version ${version} is not ${SCHEMA_VERSION}`);
  }

  /** A topic was created (its first write is about to commit). Idempotent. */
  async created(topic: string, at: number): Promise<void> {
    const inserted = this.#sql.exec(
      `INSERT INTO dd_topics (name, created_at, last_active, head, messages, bytes, subscribers, reported_at)
       VALUES (?, ?, ?, 0, 0, 0, 0, ?) ON CONFLICT(name) DO NOTHING`,
      topic,
      at,
      at,
      at,
    ).rowsWritten;
    if (inserted > 0) {
      this.#event("created", topic, at);
      this.#tellPatternFeeds(topic, at);
    }
  }

  /**
   * A topic's latest stats, and its metrics since its last report (summed here). A report for an
   * unlisted topic lists it (it was created before the Directory).
   */
  async report(topic: string, stats: TopicStats, at: number, metrics?: TopicMetricsReport): Promise<void> {
    if (metrics) this.#addMetrics(topic, metrics);
    this.#sql.exec(
      `INSERT INTO dd_topics (name, created_at, last_active, head, messages, bytes, subscribers, reported_at)
       VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)
       ON CONFLICT(name) DO UPDATE SET last_active = excluded.last_active, head = excluded.head,
         messages = excluded.messages, bytes = excluded.bytes, subscribers = excluded.subscribers,
         reported_at = excluded.reported_at`,
      topic,
      stats.lastActive,
      stats.head,
      stats.messages,
      stats.bytes,
      stats.subscribers,
      at,
    );
  }

  /** A topic was deleted. Idempotent. */
  async deleted(topic: string, at: number): Promise<void> {
    this.#sql.exec(`DELETE FROM dd_metrics WHERE name = ?`, topic);
    if (this.#sql.exec(`DELETE FROM dd_topics WHERE name = ?`, topic).rowsWritten > 0) this.#event("deleted", topic, at);
  }

  async exists(topic: string): Promise<boolean> {
    return this.#sql.exec(`SELECT 1 FROM dd_topics WHERE name = ?`, topic).toArray().length > 0;
  }

  async get(topic: string): Promise<TopicEntry | null> {
    const row = this.#sql.exec<Row>(`SELECT * FROM dd_topics WHERE name = ?`, topic).toArray()[0];
    return row ? toEntry(row) : null;
  }

  /** A page of topics in name order. A pattern is matched here, over pages of the prefix range. */
  async list(query: ListQuery): Promise<ListPage> {
    const limit = Math.max(1, Math.min(MAX_LIST_LIMIT, query.limit ?? 100));
    const prefix = query.prefix ?? "";
    // Topic names are ASCII, so every name that starts with `prefix` sorts below prefix + U+FFFF.
    const upper = `${prefix}\uffff`;
    let after = query.after ?? "";
    const topics: TopicEntry[] = [];
    for (;;) {
      const rows = this.#sql
        .exec<Row>(`SELECT * FROM dd_topics WHERE name >= ? AND name < ? AND name > ? ORDER BY name LIMIT ?`, prefix, upper, after, limit + 1)
        .toArray();
      for (const row of rows) {
        if (query.pattern !== undefined && !topicMatches(query.pattern, row.name)) continue;
        if (topics.length === limit) return { topics, cursor: topics[limit - 1]!.name };
        topics.push(toEntry(row));
      }
      if (rows.length <= limit) return { topics, cursor: null };
      after = rows[rows.length - 1]!.name;
    }
  }

  /** Created/deleted events after `seq`, oldest first. `first` is the oldest sequence still kept. */
  async events(after: number, limit = 1000): Promise<{ events: DirectoryEvent[]; first: number }> {
    const events = this.#sql
      .exec<{ seq: number; kind: string; topic: string; at: number }>(
        `SELECT seq, kind, topic, at FROM dd_events WHERE seq > ? ORDER BY seq LIMIT ?`,
        after,
        Math.max(1, Math.min(limit, 1000)),
      )
      .toArray()
      .map((r) => ({ seq: r.seq, kind: r.kind as DirectoryEvent["kind"], topic: r.topic, at: r.at }));
    const first = this.#sql.exec<{ s: number | null }>(`SELECT MIN(seq) AS s FROM dd_events`).one().s ?? after + 1;
    return { events, first };
  }

  /**
   * Durable Streams subscription `sub` watches `paths` (globs and explicit stream paths) from now
   * on, besides what it watched before (`replace`: instead). Answers the listed topics that match
   * the paths given, in the same call: a topic is either listed now, or it will ask
   * {@link dsWatchers} on its first commit and see this watch (decision 027).
   */
  async dsWatch(sub: string, globs: string[], streams: string[], replace: boolean): Promise<string[]> {
    if (replace) {
      // A (re)created subscription: listed from now on.
      this.#sql.exec(`DELETE FROM dd_ds_watch WHERE sub = ?`, sub);
      this.#sql.exec(`INSERT INTO dd_ds_subs (sub, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, sub, Date.now());
    }
    const matched = new Set<string>();
    for (const path of streams) {
      this.#sql.exec(`INSERT INTO dd_ds_watch (sub, pattern, glob) VALUES (?, ?, 0) ON CONFLICT DO NOTHING`, sub, path);
      if (this.#sql.exec(`SELECT 1 FROM dd_topics WHERE name = ?`, path).toArray().length > 0) matched.add(path);
    }
    for (const glob of globs) {
      this.#sql.exec(`INSERT INTO dd_ds_watch (sub, pattern, glob) VALUES (?, ?, 1) ON CONFLICT DO NOTHING`, sub, glob);
      // Only names under the glob's literal lead can match: scan that range of the index.
      const lead = glob.split("/").findIndex((s) => s === "*" || s === "**");
      const prefix = lead === -1 ? glob : lead === 0 ? "" : glob.split("/").slice(0, lead).join("/");
      for (const row of this.#sql.exec<{ name: string }>(`SELECT name FROM dd_topics WHERE name >= ? AND name < ?`, prefix, `${prefix}\uffff`)) {
        if (globMatches(glob, row.name)) matched.add(row.name);
      }
    }
    return [...matched];
  }

  /** Subscription `sub` no longer watches `streams` (explicit paths), or anything when `streams` is null. */
  async dsUnwatch(sub: string, streams: string[] | null): Promise<void> {
    if (streams === null) {
      // Deleted: no longer watched, no longer listed.
      this.#sql.exec(`DELETE FROM dd_ds_watch WHERE sub = ?`, sub);
      this.#sql.exec(`DELETE FROM dd_ds_subs WHERE sub = ?`, sub);
    } else for (const path of streams) this.#sql.exec(`DELETE FROM dd_ds_watch WHERE sub = ? AND pattern = ? AND glob = 0`, sub, path);
  }

  /** The tenant's Durable Streams subscription ids after `cursor`, in id order: a page of `limit`, and the cursor of the next (null at the end). */
  async dsSubscriptions(cursor: string | null, limit: number): Promise<{ ids: string[]; cursor: string | null }> {
    const ids = this.#sql
      .exec<{ sub: string }>(`SELECT sub FROM dd_ds_subs WHERE sub > ? ORDER BY sub LIMIT ?`, cursor ?? "", limit + 1)
      .toArray()
      .map((r) => r.sub);
    const more = ids.length > limit;
    if (more) ids.pop();
    return { ids, cursor: more ? ids[ids.length - 1]! : null };
  }

  /** The subscriptions that watch `topic`: by its exact path, or by a glob that matches it. */
  async dsWatchers(topic: string): Promise<string[]> {
    const subs = new Set<string>();
    for (const row of this.#sql.exec<{ sub: string }>(`SELECT sub FROM dd_ds_watch WHERE pattern = ? AND glob = 0`, topic)) subs.add(row.sub);
    for (const row of this.#sql.exec<{ sub: string; pattern: string }>(`SELECT sub, pattern FROM dd_ds_watch WHERE glob = 1`)) {
      if (globMatches(row.pattern, topic)) subs.add(row.sub);
    }
    return [...subs];
  }

  /**
   * Pattern subscription `feed` follows `pattern` from now on: answers the listed topics it matches,
   * in the same call (at most `limit`; `more` when there were others). A topic created after this
   * call is told to the feed ({@link created}), so none falls between the list and the watch.
   */
  async patternWatch(feed: string, pattern: string, limit: number): Promise<{ topics: MatchedTopic[]; more: boolean }> {
    this.#sql.exec(`INSERT INTO dd_pattern_watch (feed, pattern) VALUES (?, ?) ON CONFLICT(feed) DO UPDATE SET pattern = excluded.pattern`, feed, pattern);
    this.#patterns = null;
    const topics: MatchedTopic[] = [];
    // Only names under the pattern's literal lead can match: scan that range of the index.
    const wildcard = pattern.search(/(^|[./])[*>]/);
    const prefix = wildcard <= 0 ? "" : pattern.slice(0, wildcard + 1);
    for (const row of this.#sql.exec<{ name: string; created_at: number }>(
      `SELECT name, created_at FROM dd_topics WHERE name >= ? AND name < ? ORDER BY name`,
      prefix,
      `${prefix}\uffff`,
    )) {
      if (!topicMatches(pattern, row.name)) continue;
      if (topics.length === limit) return { topics, more: true };
      topics.push({ name: row.name, createdAt: row.created_at });
    }
    return { topics, more: false };
  }

  /** Pattern subscription `feed` ended: its topics are no longer told to it. */
  async patternUnwatch(feed: string): Promise<void> {
    if (this.#sql.exec(`DELETE FROM dd_pattern_watch WHERE feed = ?`, feed).rowsWritten > 0) this.#patterns = null;
  }

  /** The live pattern subscriptions, cached until one is added or removed. */
  #patterns: { feed: string; pattern: string }[] | null = null;

  /** Tell every pattern subscription that matches the new `topic` about it; a feed that is gone is forgotten. */
  #tellPatternFeeds(topic: string, at: number): void {
    this.#patterns ??= this.#sql.exec<{ feed: string; pattern: string }>(`SELECT feed, pattern FROM dd_pattern_watch`).toArray();
    for (const { feed, pattern } of this.#patterns) {
      if (!topicMatches(pattern, topic)) continue;
      const stub = this.env.PATTERN_FEED.get(this.env.PATTERN_FEED.idFromString(feed));
      // Not awaited: a topic's first write waits for `created`, never for a subscriber.
      const told = stub.topicCreated(topic, at).then(
        (following) => {
          if (!following) void this.patternUnwatch(feed);
        },
        (error: unknown) => console.error(`directory: could not tell pattern subscription ${feed} about ${topic}`, error),
      );
      this.ctx.waitUntil(told);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Metrics (docs/observability.md)

  #addMetrics(topic: string, report: TopicMetricsReport): void {
    const row = this.#sql.exec<{ counters: string }>(`SELECT counters FROM dd_metrics WHERE name = ?`, topic).toArray()[0];
    const counters = normalizeCounters(row ? (JSON.parse(row.counters) as TopicMetricsReport["counters"]) : null);
    addCounters(counters, normalizeCounters(report.counters));
    this.#sql.exec(
      `INSERT INTO dd_metrics (name, counters, gauges) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET counters = ?2, gauges = ?3`,
      topic,
      JSON.stringify(counters),
      JSON.stringify(report.gauges),
    );
    this.#listInDeployment();
  }

  /** Tell the deployment's Directory this tenant exists (once), so the operator's view finds it. */
  #listInDeployment(): void {
    if (this.#listedInDeployment) return;
    const name = this.ctx.id.name;
    if (name === undefined || name === DEPLOYMENT_DIRECTORY) return;
    this.#listedInDeployment = true;
    this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName(DEPLOYMENT_DIRECTORY))
      .tenantSeen(name)
      .catch((e: unknown) => {
        this.#listedInDeployment = false;
        console.error(logLine("error", "listing the tenant in the deployment directory failed", { tenant: name, error: e }));
      });
  }

  /** A storage round trip for `/healthz`: reads this object's SQLite. */
  async ping(): Promise<number> {
    return this.#sql.exec<{ v: number }>(`SELECT v FROM dd_meta WHERE k = 'schema'`).one().v;
  }

  /** (Deployment Directory) a tenant with metrics. Idempotent. */
  async tenantSeen(tenant: string): Promise<void> {
    this.#sql.exec(`INSERT INTO dd_tenants (tenant) VALUES (?) ON CONFLICT DO NOTHING`, tenant);
  }

  /** (Deployment Directory) the tenants with metrics, in name order. */
  async tenants(): Promise<string[]> {
    return this.#sql
      .exec<{ tenant: string }>(`SELECT tenant FROM dd_tenants ORDER BY tenant`)
      .toArray()
      .map((r) => r.tenant);
  }

  /** Add the gateway's counts (kept by the gateway for a few seconds, then sent here). */
  async addGatewayCounts(counts: GatewayCounters): Promise<void> {
    for (const [kind, byReason] of [
      ["rate_limited", counts.rateLimited],
      ["auth_failure", counts.authFailures],
    ] as const) {
      for (const [reason, n] of Object.entries(byReason)) {
        if (!(n > 0)) continue;
        this.#sql.exec(
          `INSERT INTO dd_gateway_counts (kind, reason, n) VALUES (?1, ?2, ?3) ON CONFLICT(kind, reason) DO UPDATE SET n = n + ?3`,
          kind,
          reason.slice(0, 64),
          n,
        );
      }
    }
  }

  /** Every topic's summed counters, last gauges and stats, and the gateway's counts. */
  async metrics(): Promise<TenantMetrics> {
    const gateway = emptyGatewayCounters();
    for (const r of this.#sql.exec<{ kind: string; reason: string; n: number }>(`SELECT kind, reason, n FROM dd_gateway_counts`)) {
      addCounts(r.kind === "rate_limited" ? gateway.rateLimited : gateway.authFailures, { [r.reason]: r.n });
    }
    const topics: TenantMetrics["topics"] = [];
    for (const r of this.#sql.exec<Row & { counters: string | null; gauges: string | null }>(
      `SELECT t.*, m.counters, m.gauges FROM dd_topics t LEFT JOIN dd_metrics m ON m.name = t.name ORDER BY t.name`,
    )) {
      const gauges: TopicGauges = r.gauges ? (JSON.parse(r.gauges) as TopicGauges) : { connections: 0, subscribers: r.subscribers, groups: [] };
      topics.push({
        name: r.name,
        messages: r.messages,
        bytes: r.bytes,
        subscribers: r.subscribers,
        head: r.head,
        counters: normalizeCounters(r.counters ? (JSON.parse(r.counters) as TopicMetricsReport["counters"]) : null),
        gauges,
      });
    }
    return { topics, gateway };
  }

  #event(kind: DirectoryEvent["kind"], topic: string, at: number): void {
    const seq = this.#sql.exec<{ seq: number }>(`INSERT INTO dd_events (kind, topic, at) VALUES (?, ?, ?) RETURNING seq`, kind, topic, at).one().seq;
    if (seq > MAX_EVENTS) this.#sql.exec(`DELETE FROM dd_events WHERE seq <= ?`, seq - MAX_EVENTS);
  }
}
