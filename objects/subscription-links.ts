/**
 * SubscriptionLinks, a Topic module (objects/topic-module.ts): tells the Durable Streams
 * subscriptions linked to this topic that its tail moved (decision 027).
 *
 * - The ids of linked subscriptions are rows of `ds_sub_links` in the topic's storage, written
 *   when a subscription links the topic ({@link link}) and dropped when a subscription answers
 *   that it no longer wants it. A topic that does not exist stores nothing: the Directory's watch
 *   links it when it is created.
 * - On its first commit the topic asks its Directory once which subscriptions watch it (a pattern
 *   or an explicit path registered before the topic existed), stores them, and notifies them with
 *   `from` = that commit's first offset: they link the stream at the position before the append
 *   that created it. `ds_sub_meta.resolved` records that it asked and found some; a topic that
 *   found none stores nothing and asks again on its first commit after the next wake.
 * - After a commit each linked subscription hears the new tail: at once when the last
 *   notification is older than {@link NOTIFY_INTERVAL_MS}, else once when it is. Not awaited by
 *   the commit: publishing never waits for a subscription.
 */
import type { CommittedBatch } from "./commit-queue.ts";
import { hasTable, type SqlHandle, type TopicLog } from "./log.ts";
import type { TopicModule } from "./topic-module.ts";

/** A linked subscription hears a topic's tail at most this often while commits keep coming. */
export const NOTIFY_INTERVAL_MS = 50;

/** What a subscription object answers to a notification. */
export interface StreamMovedReply {
  /** False: the subscription does not link this stream (any more); the topic forgets it. */
  linked: boolean;
}

export interface SubscriptionLinksHost {
  sql: SqlHandle;
  log: TopicLog;
  /** This topic's name in its tenant. */
  topic(): string;
  /** Subscriptions of this tenant that watch this topic (the Directory's answer). */
  watchers(topic: string): Promise<string[]>;
  /** Tell subscription `sub` that `topic` now ends at `tail`; `from`: link it at this offset if it watches it but has no link. */
  notify(sub: string, topic: string, tail: number, from: number | null): Promise<StreamMovedReply>;
  /** Tell subscription `sub` that `topic` was deleted (its offsets start over). */
  deleted(sub: string, topic: string): Promise<void>;
}

export class SubscriptionLinks implements TopicModule {
  readonly #host: SubscriptionLinksHost;
  #tables: boolean;
  #links: Set<string>;
  #resolved: boolean;
  #resolving = false;
  #lastNotifyAt = 0;
  /** Counts link() calls per subscription: a `linked: false` answer to a notification sent before a newer link() does not unlink. */
  #linkedTimes = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(host: SubscriptionLinksHost) {
    this.#host = host;
    this.#tables = hasTable(host.sql, "ds_sub_links");
    this.#links = new Set(
      this.#tables
        ? host.sql
            .exec<{ sub: string }>("SELECT sub FROM ds_sub_links")
            .toArray()
            .map((r) => r.sub)
        : [],
    );
    this.#resolved = this.#tables && host.sql.exec<{ v: number }>("SELECT v FROM ds_sub_meta WHERE k = 'resolved'").toArray().length > 0;
  }

  /** How many subscriptions this topic tells about its tail. */
  get count(): number {
    return this.#links.size;
  }

  #ensureTables(): void {
    if (this.#tables) return;
    this.#host.sql.exec("CREATE TABLE IF NOT EXISTS ds_sub_links (sub TEXT PRIMARY KEY) WITHOUT ROWID");
    this.#host.sql.exec("CREATE TABLE IF NOT EXISTS ds_sub_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID");
    this.#tables = true;
  }

  /**
   * Link (or unlink) subscription `sub`; answers the tail and whether the topic exists. A topic
   * without storage records nothing (reads never create topics).
   */
  link(sub: string, linked: boolean): { exists: boolean; tail: number } {
    const log = this.#host.log;
    if (!log.exists) return { exists: false, tail: 0 };
    if (linked) this.#linkedTimes.set(sub, (this.#linkedTimes.get(sub) ?? 0) + 1);
    if (linked && !this.#links.has(sub)) {
      this.#ensureTables();
      this.#host.sql.exec("INSERT INTO ds_sub_links (sub) VALUES (?) ON CONFLICT DO NOTHING", sub);
      this.#links.add(sub);
    } else if (!linked) this.#forget(sub);
    return { exists: true, tail: log.head };
  }

  onCommit(batch: CommittedBatch): void {
    if (!this.#resolved) {
      this.#resolve(batch.first);
      return;
    }
    if (this.#links.size === 0 || this.#timer !== null) return;
    const wait = this.#lastNotifyAt + NOTIFY_INTERVAL_MS - Date.now();
    if (wait <= 0) this.#notifyAll();
    else this.#timer = setTimeout(() => this.#notifyAll(), wait);
  }

  /** The topic is being deleted: its subscriptions drop the link (a glob one) or start it over (an explicit one). */
  async onDelete(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const topic = this.#host.topic();
    const results = await Promise.allSettled([...this.#links].map((sub) => this.#host.deleted(sub, topic)));
    for (const r of results) if (r.status === "rejected") console.error("topic: could not tell a subscription that the topic was deleted", r.reason);
    this.#links.clear();
  }

  /** Ask the Directory once which subscriptions watch this topic, link them from `from`, tell everyone. */
  #resolve(from: number): void {
    if (this.#resolving) return;
    this.#resolving = true;
    const topic = this.#host.topic();
    this.#host.watchers(topic).then(
      (subs) => {
        this.#resolving = false;
        this.#resolved = true;
        // Without watchers nothing is stored (a topic without subscriptions gets no tables); the
        // object asks again once per life, which links nothing twice.
        if (subs.length === 0) return;
        this.#ensureTables();
        for (const sub of subs) this.link(sub, true);
        this.#host.sql.exec("INSERT INTO ds_sub_meta (k, v) VALUES ('resolved', 1) ON CONFLICT DO NOTHING");
        const fresh = new Set(subs);
        this.#lastNotifyAt = Date.now();
        for (const sub of this.#links) this.#notify(sub, fresh.has(sub) ? from : null);
      },
      (error: unknown) => {
        // The next commit asks again.
        this.#resolving = false;
        console.error("topic: could not ask the directory for subscription watchers", error);
      },
    );
  }

  #notifyAll(): void {
    this.#timer = null;
    this.#lastNotifyAt = Date.now();
    for (const sub of this.#links) this.#notify(sub, null);
  }

  #notify(sub: string, from: number | null): void {
    const linkedTimes = this.#linkedTimes.get(sub) ?? 0;
    this.#host.notify(sub, this.#host.topic(), this.#host.log.head, from).then(
      (reply) => {
        // A subscription made again under the same id may have linked this topic meanwhile.
        if (!reply.linked && (this.#linkedTimes.get(sub) ?? 0) === linkedTimes) this.#forget(sub);
      },
      (error: unknown) => console.error(`topic: could not notify subscription ${sub}`, error),
    );
  }

  #forget(sub: string): void {
    this.#linkedTimes.delete(sub);
    if (!this.#links.delete(sub)) return;
    this.#host.sql.exec("DELETE FROM ds_sub_links WHERE sub = ?", sub);
  }
}
