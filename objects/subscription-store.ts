/**
 * SubscriptionStore: the SQLite tables of one Durable Streams subscription (decision 027). A plain
 * class over a SQL handle, like TopicLog and GroupStore:
 *
 * - `ds_sub_meta`: the schema version.
 * - `ds_sub_state`: one row, the subscription as JSON ({@link SubscriptionState}): configuration
 *   and its hash, tombstone, token secret, generation, the wake in flight, webhook retry state.
 *   Kept after a delete, so a subscription made again under the same id continues the generation
 *   (no old token or wake id can match a new wake).
 * - `ds_sub_links`: one row per linked stream: glob and/or explicit, the cursor (`acked`, the
 *   position after the last processed message, as an offset of our log) and the last tail heard.
 *
 * Every change is written in the same turn as the change, so the runtime's output gate holds the
 * answer that reports it until it is durable.
 */
import type { SubscriptionConfig } from "../protocol/ds-subscriptions.ts";
import type { SqlHandle } from "./log.ts";

export const STORE_SCHEMA_VERSION = 1;

/** A wake in flight (protocol 7). */
export interface WakeState {
  id: string;
  /** Pull-wake: the worker holding the lease; null before a claim. Webhooks: null. */
  holder: string | null;
  /** When the lease ends (ms since the epoch); null while no lease runs (a pull wake not yet claimed). */
  leaseUntil: number | null;
  /** The tail of each linked stream as this wake reported it: what `{"done": true}` acks. */
  snapshot: Record<string, number>;
}

export interface SubscriptionState {
  config: SubscriptionConfig;
  /** SHA-256 of the normalized configuration (protocol 6.2), hex. */
  hash: string;
  createdAt: number;
  deleted: boolean;
  /** The stream root URL this subscription was created under (for `callback_url` and `jwks_url`). */
  base: string;
  /** HS256 secret of this subscription's tokens, base64url. */
  secret: string;
  generation: number;
  wake: WakeState | null;
  /** Webhooks: the attempt scheduled next, persisted before each attempt (protocol 7.1). */
  retry: { attempt: number; nextAt: number } | null;
  status: "active" | "failed";
}

export interface Link {
  path: string;
  glob: boolean;
  explicit: boolean;
  /** Cursor: the position after the last processed message. */
  acked: number;
  /** The tail last heard from the stream. */
  tail: number;
}

interface LinkRow extends Record<string, number | string> {
  path: string;
  glob: number;
  explicit: number;
  acked: number;
  tail: number;
}

export class SubscriptionStore {
  readonly #sql: SqlHandle;

  constructor(sql: SqlHandle) {
    this.#sql = sql;
    sql.exec("CREATE TABLE IF NOT EXISTS ds_sub_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID");
    sql.exec("CREATE TABLE IF NOT EXISTS ds_sub_state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)");
    sql.exec(`CREATE TABLE IF NOT EXISTS ds_sub_links (path TEXT PRIMARY KEY, glob INTEGER NOT NULL, explicit INTEGER NOT NULL,
      acked INTEGER NOT NULL, tail INTEGER NOT NULL) WITHOUT ROWID`);
    const version = sql.exec<{ v: number }>("SELECT v FROM ds_sub_meta WHERE k = 'schema'").toArray()[0]?.v;
    if (version === undefined) sql.exec("INSERT INTO ds_sub_meta (k, v) VALUES ('schema', ?)", STORE_SCHEMA_VERSION);
    else if (version !== STORE_SCHEMA_VERSION) throw new Error(`subscription: schema version ${version} is not ${STORE_SCHEMA_VERSION}`);
  }

  state(): SubscriptionState | null {
    const row = this.#sql.exec<{ json: string }>("SELECT json FROM ds_sub_state WHERE id = 1").toArray()[0];
    return row ? (JSON.parse(row.json) as SubscriptionState) : null;
  }

  saveState(state: SubscriptionState): void {
    this.#sql.exec("INSERT INTO ds_sub_state (id, json) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET json = excluded.json", JSON.stringify(state));
  }

  links(): Map<string, Link> {
    const links = new Map<string, Link>();
    for (const r of this.#sql.exec<LinkRow>("SELECT path, glob, explicit, acked, tail FROM ds_sub_links ORDER BY path").toArray()) {
      links.set(r.path, { path: r.path, glob: r.glob === 1, explicit: r.explicit === 1, acked: r.acked, tail: r.tail });
    }
    return links;
  }

  saveLink(link: Link): void {
    this.#sql.exec(
      `INSERT INTO ds_sub_links (path, glob, explicit, acked, tail) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(path) DO UPDATE SET glob = excluded.glob, explicit = excluded.explicit, acked = excluded.acked, tail = excluded.tail`,
      link.path,
      link.glob ? 1 : 0,
      link.explicit ? 1 : 0,
      link.acked,
      link.tail,
    );
  }

  deleteLink(path: string): void {
    this.#sql.exec("DELETE FROM ds_sub_links WHERE path = ?", path);
  }

  clearLinks(): void {
    this.#sql.exec("DELETE FROM ds_sub_links");
  }
}
