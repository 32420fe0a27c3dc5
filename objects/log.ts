/**
 * TopicLog: the ordered, append-only message log of one topic, over SQLite.
 *
 * A plain class that takes only a SQL handle (`exec`) and a transaction runner, so it can be
 * tested without a Durable Object and knows nothing of sockets. The Topic object owns one.
 *
 * Offsets start at 0 and grow by one per message, never reused, never skipped: `head` (the next
 * offset to assign) is stored in the same transaction as the rows it covers.
 *
 * Storage layout (docs/decisions/003-storage-layout.md): one row per message, holding the
 * message's JSON body (everything but offset and time) ready to be sent, so delivery never
 * re-encodes a payload.
 *
 * A `memory` topic (protocol/durability.ts) keeps its messages in a MemoryRing instead and
 * writes nothing per message: its storage holds only its settings and an offset reservation, so
 * that its offsets never go back across restarts (they jump forward past the reserved block).
 */
import { DovetailError } from "../protocol/errors.ts";
import type { PublishMessage, ProducerStamp, SubscribeFrom } from "../protocol/frames.ts";
import { storedBody, type StoredMeta } from "../protocol/stored-message.ts";
import { DEFAULT_DURABILITY, isDurability, type Durability } from "../protocol/durability.ts";
import { base64ByteLength, utf8ByteLength } from "./bytes.ts";
import { MemoryRing } from "./memory-ring.ts";

/** A value SQLite hands back. */
export type SqlValue = ArrayBuffer | string | number | null;

/** The part of a query cursor the log uses. */
export interface SqlCursor<T> {
  toArray(): T[];
  one(): T;
}

/**
 * The part of a Durable Object's `SqlStorage` the log uses. Declared here, not taken from the
 * Workers types, so the log also runs over other SQLite bindings (its unit tests use node:sqlite).
 */
export interface SqlHandle {
  exec<T extends Record<string, SqlValue>>(query: string, ...bindings: unknown[]): SqlCursor<T>;
}

/** Runs `fn` in one transaction: all of its writes commit together or not at all. */
export type TransactionRunner = <T>(fn: () => T) => T;

export const SCHEMA_VERSION = 1;
/** Idempotent-producer window: the last this-many sequence numbers per producer are remembered. */
export const PRODUCER_WINDOW = 64;
/** A producer unseen for this long is forgotten. */
export const PRODUCER_IDLE_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * A memory topic reserves offsets in blocks of this many, writing the end of the block to storage
 * before it gives out the first offset of the block. After a restart it starts at the reserved
 * end, so an offset it gave out is never given again (the gap is at most one block).
 */
export const MEMORY_OFFSET_BLOCK = 10_000;
/** Memory topics remember this many producers (the least recently seen is forgotten first). */
export const MEMORY_PRODUCERS = 10_000;
/** Appends a JSON array of `[size, body]` pairs as consecutive rows from offset ?1, stored at ?2. */
const INSERT_ROWS = `INSERT INTO dt_log (off, time, size, body)
  SELECT ?1 + CAST(key AS INTEGER), ?2, value ->> '$[0]', value ->> '$[1]' FROM json_each(?3)`;

/** A message checked and encoded, waiting for its offset. */
export interface PreparedMessage {
  /** JSON members after offset and time, e.g. `"key":"k","data":{"a":1}`. */
  body: string;
  /** Payload size in bytes (UTF-8 JSON text, or decoded bytes). */
  size: number;
}

export interface Retention {
  /** Drop messages older than this; 0 keeps them. */
  maxAgeMs: number;
  /** Keep at most this many messages; 0 for no limit. */
  maxMessages: number;
  /** Keep at most this many payload bytes; 0 for no limit. */
  maxBytes: number;
}

export interface LogState {
  head: number;
  earliest: number;
  bytes: number;
  lastTime: number;
}

export interface LogInfo {
  topic: string;
  head: number;
  earliest: number;
  messages: number;
  bytes: number;
  lastTime: number;
  retention: Retention;
  durability: Durability;
}

export interface AppendResult {
  offset: number;
  count: number;
  time: number;
}

export interface StoredRow {
  offset: number;
  time: number;
  body: string;
}

/** Answer for a publish whose producer sequence was seen before. */
export interface DuplicateResult {
  offset: number;
  count: number;
}

/**
 * Check one message against the size limit and encode its body. Throws `message_too_large`.
 */
export function prepareMessage(message: PublishMessage, maxMessageBytes: number, index = 0, now = Date.now()): PreparedMessage {
  let size: number;
  let body: string;
  const meta: StoredMeta = message.ttlMs === undefined ? message : { ...message, expiresAt: now + message.ttlMs };
  if (message.bytes !== undefined) {
    size = base64ByteLength(message.bytes);
    body = storedBody({ bytes: message.bytes }, meta);
  } else {
    const text = JSON.stringify(message.data);
    size = utf8ByteLength(text);
    body = storedBody({ data: text }, meta);
  }
  if (size > maxMessageBytes) {
    throw new DovetailError("message_too_large", `message ${index} is ${size} bytes; the limit is ${maxMessageBytes}`);
  }
  return { body, size };
}

/** Whether table `name` exists. Reading the schema creates no storage. */
export function hasTable(sql: SqlHandle, name: string): boolean {
  return sql.exec<{ n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray()[0]!.n > 0;
}

export class TopicLog {
  readonly #sql: SqlHandle;
  readonly #transaction: TransactionRunner;
  #state: LogState;
  #retention: Retention;
  #topic: string;

  /**
   * Whether this topic has storage. A topic is created by its first write (a publish, a
   * retention setting); until then reads answer from an empty log without touching SQLite, so
   * no read of any kind creates a topic's storage (issue 18: HEAD on twenty names made twenty
   * SQLite files).
   */
  #born: boolean;
  #durability: Durability;
  /** The messages of a `memory` topic; null when the topic stores them. */
  #ring: MemoryRing | null = null;
  /** Memory topics: the end of the reserved offset block (stored as `memory_next`). */
  #reservedUpTo = 0;
  /** Memory topics: each producer's last seq and recent batches (seq → where they went), newest producers last. */
  #memoryProducers = new Map<string, { last: number; batches: Map<number, DuplicateResult> }>();

  constructor(sql: SqlHandle, transaction: TransactionRunner, defaults: { topic: string; retention: Retention }) {
    this.#sql = sql;
    this.#transaction = transaction;
    this.#born = hasTable(sql, "dt_meta");
    if (this.#born) this.#ensureSchema();
    this.#topic = this.#meta("topic") ?? defaults.topic;
    const retention = this.#meta("retention");
    this.#retention = retention ? (JSON.parse(retention) as Retention) : defaults.retention;
    const row = !this.#born
      ? undefined
      : sql
          .exec<{ head: number; earliest: number; bytes: number; last_time: number }>("SELECT head, earliest, bytes, last_time FROM dt_state WHERE id = 1")
          .toArray()[0];
    this.#state = row ? { head: row.head, earliest: row.earliest, bytes: row.bytes, lastTime: row.last_time } : { head: 0, earliest: 0, bytes: 0, lastTime: 0 };
    const durability = this.#meta("durability");
    this.#durability = isDurability(durability) ? durability : DEFAULT_DURABILITY;
    if (this.#durability === "memory") this.#openRing(Number(this.#meta("memory_next") ?? this.#state.head));
  }

  /** Start an empty ring at `head`: nothing of it is reserved yet. */
  #openRing(head: number): void {
    this.#ring = new MemoryRing(head);
    this.#reservedUpTo = head;
    this.#state = { head, earliest: head, bytes: 0, lastTime: this.#state.lastTime };
  }

  #ensureSchema(): void {
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    const version = this.#meta("schema_version");
    if (version !== null && Number(version) > SCHEMA_VERSION) {
      throw new DovetailError("internal", `topic storage has schema ${version}; this build knows ${SCHEMA_VERSION}`);
    }
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dt_log (
      off INTEGER PRIMARY KEY, time INTEGER NOT NULL, size INTEGER NOT NULL, body TEXT NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dt_state (
      id INTEGER PRIMARY KEY CHECK (id = 1), head INTEGER NOT NULL, earliest INTEGER NOT NULL,
      bytes INTEGER NOT NULL, last_time INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dt_producers (
      id TEXT NOT NULL, seq INTEGER NOT NULL, off INTEGER NOT NULL, count INTEGER NOT NULL,
      time INTEGER NOT NULL, PRIMARY KEY (id, seq)) WITHOUT ROWID`);
    if (version === null) this.#setMeta("schema_version", String(SCHEMA_VERSION));
  }

  /** Create the storage before the first write. */
  #birth(): void {
    if (this.#born) return;
    this.#born = true;
    this.#ensureSchema();
    if (this.#topic !== "") this.#setMeta("topic", this.#topic);
  }

  /** Whether the topic has storage (it was written to at least once). */
  get exists(): boolean {
    return this.#born;
  }

  #meta(key: string): string | null {
    if (!this.#born) return null;
    const row = this.#sql.exec<{ value: string }>("SELECT value FROM dt_meta WHERE key = ?", key).toArray()[0];
    return row ? row.value : null;
  }

  #setMeta(key: string, value: string): void {
    this.#sql.exec("INSERT INTO dt_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
  }

  get topic(): string {
    return this.#topic;
  }

  /** Remember the topic's name the first time it is used (the object has no other way to know). */
  nameTopic(topic: string): void {
    if (this.#topic === topic) return;
    this.#topic = topic;
    if (this.#born) this.#setMeta("topic", topic);
  }

  get head(): number {
    return this.#state.head;
  }

  get earliest(): number {
    return this.#state.earliest;
  }

  /** When the last message was stored (ms since the epoch); a new commit is stamped no earlier. */
  get lastTime(): number {
    return this.#state.lastTime;
  }

  get retention(): Retention {
    return this.#retention;
  }

  setRetention(retention: Retention): void {
    this.#birth();
    this.#retention = retention;
    this.#setMeta("retention", JSON.stringify(retention));
  }

  info(): LogInfo {
    const s = this.#state;
    return {
      topic: this.#topic,
      head: s.head,
      earliest: s.earliest,
      messages: s.head - s.earliest,
      bytes: s.bytes,
      lastTime: s.lastTime,
      retention: this.#retention,
      durability: this.#durability,
    };
  }

  get durability(): Durability {
    return this.#durability;
  }

  /**
   * Change the durability level. `sync` and `async` differ only in when subscribers see a
   * message, so either may follow the other at any time. `memory` may be chosen only before the
   * topic stored its first message (throws `conflict`); leaving it, the stored log starts empty
   * at the memory topic's head, so offsets keep growing.
   */
  setDurability(level: Durability): void {
    if (level === this.#durability) return;
    if (level === "memory" && this.#state.head > 0) {
      throw new DovetailError(
        "conflict",
        `topic ${this.#topic} already stores messages (head ${this.#state.head}); memory durability is chosen before the first message (delete the topic to start over)`,
      );
    }
    this.#birth();
    const ring = this.#ring;
    this.#transaction(() => {
      this.#setMeta("durability", level);
      if (level === "memory") this.#setMeta("memory_next", String(this.#state.head));
      if (ring) {
        // The stored log starts where the ring ended; what the ring held was never stored.
        this.#sql.exec("DELETE FROM dt_meta WHERE key = 'memory_next'");
        this.#sql.exec(
          `INSERT INTO dt_state (id, head, earliest, bytes, last_time) VALUES (1, ?1, ?1, 0, ?2)
           ON CONFLICT(id) DO UPDATE SET head = excluded.head, earliest = excluded.earliest, bytes = 0, last_time = excluded.last_time`,
          ring.head,
          this.#state.lastTime,
        );
      }
    });
    this.#durability = level;
    if (level === "memory") this.#openRing(this.#state.head);
    else if (ring) {
      this.#ring = null;
      this.#state = { head: ring.head, earliest: ring.head, bytes: 0, lastTime: this.#state.lastTime };
    }
  }

  /** Memory topics: hold the messages in the ring; only a new offset block is written. */
  #appendToRing(ring: MemoryRing, groups: readonly { messages: readonly PreparedMessage[]; producer?: ProducerStamp }[], time: number): AppendResult[] {
    const results: AppendResult[] = [];
    for (const group of groups) {
      results.push({ offset: ring.head, count: group.messages.length, time });
      if (group.producer) this.#rememberProducer(group.producer, { offset: ring.head, count: group.messages.length });
      ring.push(group.messages, time);
    }
    if (ring.head > this.#reservedUpTo) {
      this.#reservedUpTo = ring.head + MEMORY_OFFSET_BLOCK;
      this.#setMeta("memory_next", String(this.#reservedUpTo));
    }
    this.#state = { head: ring.head, earliest: ring.earliest, bytes: ring.bytes, lastTime: time };
    return results;
  }

  /**
   * Append groups of messages in one transaction (group commit). Each group gets consecutive
   * offsets; groups are stored in the order given. Producer stamps are recorded in the same
   * transaction, so a stored batch and its dedup record are never apart.
   */
  appendGroups(groups: readonly { messages: readonly PreparedMessage[]; producer?: ProducerStamp }[], now: number): AppendResult[] {
    const time = Math.max(now, this.#state.lastTime);
    if (this.#ring) return this.#appendToRing(this.#ring, groups, time);
    this.#birth();
    // The in-memory state moves only once the transaction has returned: when a statement fails
    // (SQLITE_FULL on a full storage) the transaction rolls back and head, bytes and lastTime
    // stay those of the stored log, so the next append gets the same offsets.
    const { results, head, bytes } = this.#transaction(() => {
      let head = this.#state.head;
      let bytes = this.#state.bytes;
      const results: AppendResult[] = [];
      const rows: PreparedMessage[] = [];
      for (const group of groups) {
        results.push({ offset: head, count: group.messages.length, time });
        if (group.producer) {
          this.#sql.exec(
            "INSERT INTO dt_producers (id, seq, off, count, time) VALUES (?, ?, ?, ?, ?)",
            group.producer.id,
            group.producer.seq,
            head,
            group.messages.length,
            time,
          );
          this.#sql.exec("DELETE FROM dt_producers WHERE id = ? AND seq <= ?", group.producer.id, group.producer.seq - PRODUCER_WINDOW);
        }
        for (const m of group.messages) {
          rows.push(m);
          bytes += m.size;
        }
        head += group.messages.length;
      }
      this.#insertRows(this.#state.head, time, rows);
      this.#sql.exec(
        `INSERT INTO dt_state (id, head, earliest, bytes, last_time) VALUES (1, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET head = excluded.head, bytes = excluded.bytes, last_time = excluded.last_time`,
        head,
        this.#state.earliest,
        bytes,
        time,
      );
      return { results, head, bytes };
    });
    this.#state = { ...this.#state, head, bytes, lastTime: time };
    return results;
  }

  /**
   * Insert rows with one statement: SQLite unpacks a JSON array of `[size, body]` pairs itself
   * (`json_each`), which measured about 3× faster than 25-row multi-VALUES statements, the most a
   * Durable Object's 100 bound values per statement allow (docs/decisions/003-storage-layout.md).
   */
  #insertRows(first: number, time: number, rows: readonly PreparedMessage[]): void {
    if (rows.length === 0) return;
    const pairs = new Array<string>(rows.length);
    for (let i = 0; i < rows.length; i++) pairs[i] = `[${rows[i]!.size},${JSON.stringify(rows[i]!.body)}]`;
    this.#sql.exec(INSERT_ROWS, first, time, `[${pairs.join(",")}]`);
  }

  /**
   * Memory topics keep the producer window in memory (the SDK stamps every publish), so a resend
   * after a reconnect is answered, not delivered twice, until the object restarts.
   */
  #rememberProducer(p: ProducerStamp, at: DuplicateResult): void {
    let producer = this.#memoryProducers.get(p.id);
    if (producer)
      this.#memoryProducers.delete(p.id); // re-inserted last: newest
    else producer = { last: p.seq, batches: new Map() };
    producer.last = p.seq;
    producer.batches.set(p.seq, at);
    producer.batches.delete(p.seq - PRODUCER_WINDOW);
    this.#memoryProducers.set(p.id, producer);
    if (this.#memoryProducers.size > MEMORY_PRODUCERS) this.#memoryProducers.delete(this.#memoryProducers.keys().next().value!);
  }

  /** The latest stored sequence number of a producer, or null when it is unknown. */
  lastProducerSeq(id: string): number | null {
    if (this.#ring) {
      return this.#memoryProducers.get(id)?.last ?? null;
    }
    if (!this.#born) return null;
    const row = this.#sql.exec<{ seq: number }>("SELECT seq FROM dt_producers WHERE id = ? ORDER BY seq DESC LIMIT 1", id).toArray()[0];
    return row ? row.seq : null;
  }

  /** Where a producer's earlier batch was stored, if it is still in the window. */
  producerBatch(id: string, seq: number): DuplicateResult | null {
    if (this.#ring) return this.#memoryProducers.get(id)?.batches.get(seq) ?? null;
    if (!this.#born) return null;
    const row = this.#sql.exec<{ off: number; count: number }>("SELECT off, count FROM dt_producers WHERE id = ? AND seq = ?", id, seq).toArray()[0];
    return row ? { offset: row.off, count: row.count } : null;
  }

  /**
   * Read up to `limit` messages from `from`, stopping early once `maxBytes` of payload is
   * reached (always at least one message). Throws `offset_trimmed` below the earliest offset.
   */
  read(from: number, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): StoredRow[] {
    this.checkReadable(from);
    if (this.#ring) return this.#ring.read(from, limit, maxBytes);
    if (!this.#born) return [];
    const rows = this.#sql
      .exec<{ off: number; time: number; size: number; body: string }>(
        "SELECT off, time, size, body FROM dt_log WHERE off >= ? ORDER BY off LIMIT ?",
        from,
        limit,
      )
      .toArray();
    const out: StoredRow[] = [];
    let bytes = 0;
    for (const r of rows) {
      if (out.length > 0 && bytes + r.size > maxBytes) break;
      bytes += r.size;
      out.push({ offset: r.off, time: r.time, body: r.body });
    }
    return out;
  }

  /** The stored messages at `offsets` (those still stored), in offset order. */
  readAt(offsets: readonly number[]): StoredRow[] {
    if (this.#ring) return []; // only consumer groups read by offset, and a memory topic refuses them
    if (!this.#born || offsets.length === 0) return [];
    return this.#sql
      .exec<{ off: number; time: number; body: string }>(
        "SELECT off, time, body FROM dt_log WHERE off IN (SELECT value FROM json_each(?)) ORDER BY off",
        JSON.stringify(offsets),
      )
      .toArray()
      .map((r) => ({ offset: r.off, time: r.time, body: r.body }));
  }

  /** Throws the error a reader at `offset` should get, if any. `head` itself is readable (empty). */
  checkReadable(offset: number): void {
    // A memory topic skips what it no longer holds instead (MemoryRing.read).
    if (offset < this.#state.earliest && !this.#ring) {
      throw new DovetailError("offset_trimmed", `offset ${offset} was removed by retention; the earliest available is ${this.#state.earliest}`, {
        earliest: this.#state.earliest,
      });
    }
    if (offset > this.#state.head) {
      throw new DovetailError("offset_out_of_range", `offset ${offset} is past the end of the log (next offset is ${this.#state.head})`, {
        head: this.#state.head,
      });
    }
  }

  /** Resolve a subscription start to an offset. */
  resolveFrom(from: SubscribeFrom): number {
    if (from === "earliest") return this.#state.earliest;
    if (from === "latest") return this.#state.head;
    if (typeof from === "number") {
      this.checkReadable(from);
      return Math.max(from, this.#state.earliest);
    }
    return this.firstAtOrAfter(from.time);
  }

  /**
   * The first offset stored at or after `time` (head if none). Times never decrease along the
   * log, so this is a binary search over primary-key lookups rather than an index on time,
   * which would slow every insert.
   */
  firstAtOrAfter(time: number): number {
    let lo = this.#state.earliest;
    let hi = this.#state.head; // answer is in [lo, hi]
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const at = this.timeOf(mid);
      if (at !== null && at >= time) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** When the message at `offset` was stored, or null when it is not stored. */
  timeOf(offset: number): number | null {
    if (this.#ring) return this.#ring.timeOf(offset);
    if (!this.#born) return null;
    return this.#sql.exec<{ time: number }>("SELECT time FROM dt_log WHERE off = ?", offset).toArray()[0]?.time ?? null;
  }

  /**
   * Apply retention now. Returns the new earliest offset. Trims whole messages from the front;
   * never touches `head`, so offsets stay monotonic after any trim.
   */
  enforceRetention(now: number): number {
    return this.trimTo(this.retentionCut(now));
  }

  /**
   * The offset that `retention` (the topic's own by default) trims the log up to now: every
   * message below it goes. `earliest` when nothing does; never past `head`.
   */
  retentionCut(now: number, retention: Retention = this.#retention): number {
    if (!this.#born || this.#ring) return this.#state.earliest; // a ring keeps its own bounds
    const { maxAgeMs, maxMessages, maxBytes } = retention;
    const s = this.#state;
    let cut = s.earliest;
    if (maxMessages > 0) cut = Math.max(cut, s.head - maxMessages);
    if (maxAgeMs > 0) cut = Math.max(cut, this.firstAtOrAfter(now - maxAgeMs + 1));
    if (maxBytes > 0 && s.bytes > maxBytes) {
      let held = s.bytes - this.#bytesBefore(cut);
      let at = cut;
      while (held > maxBytes && at < s.head) {
        const rows = this.#sql.exec<{ off: number; size: number }>("SELECT off, size FROM dt_log WHERE off >= ? ORDER BY off LIMIT 1000", at).toArray();
        if (rows.length === 0) break;
        for (const r of rows) {
          if (held <= maxBytes) break;
          held -= r.size;
          at = r.off + 1;
        }
      }
      cut = at;
    }
    return Math.min(cut, s.head);
  }

  /**
   * Remove every message below `cut` in one transaction. Returns the new earliest offset.
   * `earliest` and `bytes` move only once the transaction has returned, so a delete that fails
   * (a full storage) leaves them as stored.
   */
  trimTo(cut: number): number {
    const s = this.#state;
    cut = Math.min(cut, s.head);
    if (!this.#born || this.#ring || cut <= s.earliest) return s.earliest;
    const bytes = this.#transaction(() => {
      const left = s.bytes - this.#bytesBefore(cut);
      this.#sql.exec("DELETE FROM dt_log WHERE off < ?", cut);
      this.#sql.exec(
        `INSERT INTO dt_state (id, head, earliest, bytes, last_time) VALUES (1, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET earliest = excluded.earliest, bytes = excluded.bytes`,
        s.head,
        cut,
        left,
        s.lastTime,
      );
      return left;
    });
    this.#state = { ...this.#state, earliest: cut, bytes };
    return cut;
  }

  /** Payload bytes stored below `offset`. */
  #bytesBefore(offset: number): number {
    return this.#sql.exec<{ total: number | null }>("SELECT SUM(size) AS total FROM dt_log WHERE off < ?", offset).one().total ?? 0;
  }

  /** Forget producers idle for longer than {@link PRODUCER_IDLE_MS}. */
  expireProducers(now: number): void {
    if (!this.#born) return;
    this.#sql.exec("DELETE FROM dt_producers WHERE id IN (SELECT id FROM dt_producers GROUP BY id HAVING MAX(time) < ?)", now - PRODUCER_IDLE_MS);
  }

  /** Whether retention would trim anything now or later (so the object knows to set an alarm). */
  hasRetention(): boolean {
    if (this.#ring) return false;
    const r = this.#retention;
    return r.maxAgeMs > 0 || r.maxMessages > 0 || r.maxBytes > 0;
  }
}
