/**
 * StreamState: what the Durable Streams protocol adds to a topic, over the topic's SQLite, in its
 * own `ds_` tables next to the log: content type, closed flag, TTL / expiry, fork origin and fork
 * references, the `Stream-Seq` high-water mark, and idempotent producers with epochs.
 *
 * A plain class over a SQL handle like TopicLog (objects/log.ts): it never touches the log's
 * tables and knows nothing of HTTP. The Topic object owns one and consults it on each `ds*` RPC.
 *
 * Durability: state that belongs to an append (producer seq, `Stream-Seq`, the closed flag of an
 * append-and-close) changes in memory when the append is accepted, so pipelined requests are
 * checked against it at once, and is written by {@link persist} from the topic's commit hook, in
 * the same synchronous turn as the group commit that stores the messages. The runtime commits the
 * writes of one turn together, so a stored batch and its producer record are never apart
 * (docs/decisions/008-streams-state-and-waiting.md).
 */
import { hasTable, type SqlHandle } from "./log.ts";

export const STREAM_SCHEMA_VERSION = 1;
/** A producer unseen for this long is forgotten (protocol 5.2.1 recommends 7 days). */
export const STREAM_PRODUCER_IDLE_MS = 7 * 24 * 60 * 60 * 1000;

/** The protocol's view of one topic. */
export interface StreamRecord {
  contentType: string;
  /** First Dovetail offset of this stream's incarnation (a DELETE then PUT starts a new one). */
  base: number;
  closed: boolean;
  /** Producer tuple whose append closed the stream, for idempotent retries of that close. */
  closedBy: { id: string; epoch: number; seq: number } | null;
  ttlSeconds: number | null;
  /** RFC 3339 text as given. */
  expiresAt: string | null;
  /** Last read or write, ms since the epoch (for the TTL's sliding window). */
  lastAccess: number;
  /** Last `Stream-Seq` accepted. */
  streamSeq: string | null;
  forkedFrom: string | null;
  forkOffset: number | null;
  forkSubOffset: number | null;
  /** How many forks name this stream as their source. */
  refs: number;
  /** Deleted while forks still reference it: 410 to clients, data kept for the forks. */
  softDeleted: boolean;
}

export interface ProducerState {
  epoch: number;
  lastSeq: number;
  updated: number;
}

/** The outcome of checking a producer's (epoch, seq) against its state (protocol 5.2.1). */
export type ProducerCheck =
  | { status: "accepted"; next: ProducerState }
  | { status: "duplicate"; lastSeq: number }
  | { status: "stale_epoch"; currentEpoch: number }
  | { status: "invalid_epoch_seq" }
  | { status: "gap"; expected: number; received: number };

interface StreamRow extends Record<string, SqlStorageValue> {
  content_type: string;
  base: number;
  closed: number;
  closed_by: string | null;
  ttl_seconds: number | null;
  expires_at: string | null;
  last_access: number;
  stream_seq: string | null;
  forked_from: string | null;
  fork_offset: number | null;
  fork_sub_offset: number | null;
  refs: number;
  soft_deleted: number;
  deleted: number;
}

export class StreamState {
  readonly #sql: SqlHandle;
  /** undefined: not loaded yet; null: no live stream. */
  #record: StreamRecord | null | undefined;
  /** Where the last incarnation ended, so a re-created stream starts after it. */
  #deletedAt: number | null = null;
  readonly #producers = new Map<string, ProducerState>();
  readonly #dirtyProducers = new Set<string>();
  #dirtyRecord = false;

  /** Whether the `ds_` tables exist. They are made by the first write, so reads create no storage. */
  #born: boolean;

  constructor(sql: SqlHandle) {
    this.#sql = sql;
    this.#born = hasTable(sql, "ds_meta");
    if (this.#born) this.#ensureSchema();
  }

  /** Create the tables before the first write. */
  #birth(): void {
    if (this.#born) return;
    this.#born = true;
    this.#ensureSchema();
  }

  #ensureSchema(): void {
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ds_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    const row = this.#sql.exec<{ value: string }>("SELECT value FROM ds_meta WHERE key = 'schema_version'").toArray()[0];
    if (row && Number(row.value) > STREAM_SCHEMA_VERSION) {
      throw new Error(`stream storage has schema ${row.value}; this build knows ${STREAM_SCHEMA_VERSION}`);
    }
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ds_stream (
      id INTEGER PRIMARY KEY CHECK (id = 1), content_type TEXT NOT NULL, base INTEGER NOT NULL,
      closed INTEGER NOT NULL, closed_by TEXT, ttl_seconds INTEGER, expires_at TEXT,
      last_access INTEGER NOT NULL, stream_seq TEXT, forked_from TEXT, fork_offset INTEGER,
      fork_sub_offset INTEGER, refs INTEGER NOT NULL, soft_deleted INTEGER NOT NULL,
      deleted INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ds_producers (
      id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, last_seq INTEGER NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID`);
    if (!row) this.#sql.exec("INSERT INTO ds_meta (key, value) VALUES ('schema_version', ?)", String(STREAM_SCHEMA_VERSION));
  }

  /** The live stream, or null when there is none (never created, deleted, or expired). */
  get record(): StreamRecord | null {
    if (this.#record === undefined) this.#load();
    return this.#record ?? null;
  }

  /** True when a DS row exists at all (live, soft-deleted or deleted). */
  get hasHistory(): boolean {
    if (this.#record === undefined) this.#load();
    return this.#record !== null || this.#deletedAt !== null;
  }

  /** Offset a re-created stream starts at: past everything of the previous incarnation. */
  get deletedAt(): number | null {
    if (this.#record === undefined) this.#load();
    return this.#deletedAt;
  }

  #load(): void {
    if (!this.#born) {
      this.#record = null;
      return;
    }
    const row = this.#sql.exec<StreamRow>("SELECT * FROM ds_stream WHERE id = 1").toArray()[0];
    if (!row || row.deleted) {
      this.#record = null;
      this.#deletedAt = row ? row.base : null;
      return;
    }
    this.#record = {
      contentType: row.content_type,
      base: row.base,
      closed: row.closed === 1,
      closedBy: row.closed_by ? (JSON.parse(row.closed_by) as StreamRecord["closedBy"]) : null,
      ttlSeconds: row.ttl_seconds,
      expiresAt: row.expires_at,
      lastAccess: row.last_access,
      streamSeq: row.stream_seq,
      forkedFrom: row.forked_from,
      forkOffset: row.fork_offset,
      forkSubOffset: row.fork_sub_offset,
      refs: row.refs,
      softDeleted: row.soft_deleted === 1,
    };
  }

  /** Create (or replace) the stream record and write it now. */
  create(record: StreamRecord): void {
    this.#record = record;
    this.#deletedAt = null;
    this.#producers.clear();
    this.#dirtyProducers.clear();
    this.#birth();
    this.#sql.exec("DELETE FROM ds_producers");
    this.#writeRecord(record, false);
  }

  /** Change the record in memory; written by the next {@link persist} or {@link flushRecord}. */
  update(change: Partial<StreamRecord>): void {
    const r = this.record;
    if (!r) return;
    Object.assign(r, change);
    this.#dirtyRecord = true;
  }

  /** Write a changed record now (changes not tied to a pending append). */
  flushRecord(): void {
    const r = this.record;
    if (r && this.#dirtyRecord) this.#writeRecord(r, false);
    this.#dirtyRecord = false;
  }

  /**
   * Remove the stream. Messages stay in the topic's log for WebSocket readers; a stream created
   * here later starts at `head`, so its offsets never repeat this one's.
   */
  delete(head: number): void {
    this.#record = null;
    this.#deletedAt = head;
    this.#producers.clear();
    this.#dirtyProducers.clear();
    this.#dirtyRecord = false;
    this.#birth();
    this.#sql.exec("DELETE FROM ds_producers");
    this.#sql.exec(
      `INSERT OR REPLACE INTO ds_stream (id, content_type, base, closed, last_access, refs, soft_deleted, deleted)
       VALUES (1, '', ?, 0, 0, 0, 0, 1)`,
      head,
    );
  }

  #writeRecord(r: StreamRecord, deleted: boolean): void {
    this.#sql.exec(
      `INSERT OR REPLACE INTO ds_stream (id, content_type, base, closed, closed_by, ttl_seconds, expires_at,
        last_access, stream_seq, forked_from, fork_offset, fork_sub_offset, refs, soft_deleted, deleted)
       VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      r.contentType,
      r.base,
      r.closed ? 1 : 0,
      r.closedBy ? JSON.stringify(r.closedBy) : null,
      r.ttlSeconds,
      r.expiresAt,
      r.lastAccess,
      r.streamSeq,
      r.forkedFrom,
      r.forkOffset,
      r.forkSubOffset,
      r.refs,
      r.softDeleted ? 1 : 0,
      deleted ? 1 : 0,
    );
  }

  /** Whether the stream's TTL or Expires-At has passed. */
  isExpired(now: number): boolean {
    const r = this.record;
    if (!r) return false;
    if (r.expiresAt !== null) {
      const at = Date.parse(r.expiresAt);
      if (!Number.isFinite(at) || now >= at) return true;
    }
    return r.ttlSeconds !== null && now >= r.lastAccess + r.ttlSeconds * 1000;
  }

  /** A read or write restarts the TTL window (HEAD does not). Written at once: one small row. */
  touch(now: number): void {
    const r = this.record;
    if (!r || r.ttlSeconds === null) return;
    r.lastAccess = now;
    this.#sql.exec("UPDATE ds_stream SET last_access = ? WHERE id = 1", now);
  }

  // ---------------------------------------------------------------------------------------------
  // Idempotent producers

  #producer(id: string): ProducerState | null {
    const cached = this.#producers.get(id);
    if (cached) return cached;
    if (!this.#born) return null;
    const row = this.#sql
      .exec<{ epoch: number; last_seq: number; updated: number }>("SELECT epoch, last_seq, updated FROM ds_producers WHERE id = ?", id)
      .toArray()[0];
    if (!row) return null;
    const state = { epoch: row.epoch, lastSeq: row.last_seq, updated: row.updated };
    this.#producers.set(id, state);
    return state;
  }

  /** Check (epoch, seq) for a producer (protocol 5.2.1 "Validation Logic"); changes nothing. */
  checkProducer(id: string, epoch: number, seq: number, now: number): ProducerCheck {
    let state = this.#producer(id);
    if (state && now - state.updated > STREAM_PRODUCER_IDLE_MS) state = null;
    if (!state) {
      if (seq !== 0) return { status: "gap", expected: 0, received: seq };
      return { status: "accepted", next: { epoch, lastSeq: 0, updated: now } };
    }
    if (epoch < state.epoch) return { status: "stale_epoch", currentEpoch: state.epoch };
    if (epoch > state.epoch) {
      if (seq !== 0) return { status: "invalid_epoch_seq" };
      return { status: "accepted", next: { epoch, lastSeq: 0, updated: now } };
    }
    if (seq <= state.lastSeq) return { status: "duplicate", lastSeq: state.lastSeq };
    if (seq === state.lastSeq + 1) return { status: "accepted", next: { epoch, lastSeq: seq, updated: now } };
    return { status: "gap", expected: state.lastSeq + 1, received: seq };
  }

  /** Take an accepted producer state; written by the next {@link persist}. */
  acceptProducer(id: string, next: ProducerState): void {
    this.#producers.set(id, next);
    this.#dirtyProducers.add(id);
  }

  /**
   * Write everything accepted since the last call. Called from the topic's commit hook, in the
   * same turn as the group commit, and after close-only requests.
   */
  persist(): void {
    if (this.#dirtyProducers.size > 0) this.#birth();
    for (const id of this.#dirtyProducers) {
      const p = this.#producers.get(id);
      if (!p) continue;
      this.#sql.exec(
        "INSERT INTO ds_producers (id, epoch, last_seq, updated) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, last_seq = excluded.last_seq, updated = excluded.updated",
        id,
        p.epoch,
        p.lastSeq,
        p.updated,
      );
    }
    this.#dirtyProducers.clear();
    this.flushRecord();
  }

  /** Forget in-memory changes that were never persisted (their commit failed). */
  discardPending(): void {
    for (const id of this.#dirtyProducers) this.#producers.delete(id);
    this.#dirtyProducers.clear();
    if (this.#dirtyRecord) this.#record = undefined;
    this.#dirtyRecord = false;
  }
}
