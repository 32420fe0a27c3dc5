/**
 * MailStore: one tenant's agent mail over SQLite (docs/mail.md, decision 032). A plain class over
 * a minimal SQL handle and a transaction runner, like TopicLog (objects/log.ts); the Mail object
 * (objects/mail.ts) owns one and does the permission checks, the registry lookups and the rate
 * limit. Tables carry the `ml_` prefix:
 *
 * - `ml_messages`: one row per message (sender, the to/cc/bcc lists as given, subject, Markdown
 *   body, importance, ack flag, structured data, time); its integer key is the message id.
 * - `ml_recipients`: one row per (agent, message) with how it was addressed and the agent's read
 *   and acknowledgement times; keyed by agent first, so an inbox page is one range scan.
 * - `ml_threads`: one row per thread (subject of its first message, count, last activity).
 * - `ml_fts`: an FTS5 index over subject and body, external content (the text is stored once, in
 *   `ml_messages`), Porter stemming over unicode61 tokens.
 * - `ml_agents`: every agent that sent or received mail (what a search's permission filter reads).
 * - `ml_outbox`, `ml_pub`: live copies waiting to be published to inbox topics, and each topic's
 *   idempotent-producer sequence (objects/mail.ts publishes them).
 *
 * A send writes the message, every recipient row, the thread, the index entry and the outbox rows
 * in one transaction: every recipient has it, or nobody does.
 */
import { DovetailError } from "../protocol/errors.ts";
import type { CheckedSend } from "../protocol/mail-schemas.ts";
import {
  inboxTopic,
  type MailDelivery,
  type MailImportance,
  type MailMessage,
  type RecipientKind,
  type RecipientState,
  type SearchQuery,
  type SentMail,
} from "../protocol/mail.ts";
import { utf8ByteLength } from "./bytes.ts";
import type { SqlHandle, TransactionRunner } from "./log.ts";

export const MAIL_SCHEMA_VERSION = 1;

/** Who reads: whether they may read agent `agent`'s mail (its inbox topic's `subscribe`). */
export interface MailReader {
  /** May read every agent's mail (a scope whose pattern covers every inbox). */
  all: boolean;
  mayRead(agent: string): boolean;
}

interface MessageRow extends Record<string, string | number | null> {
  id: number;
  thread: string;
  sender: string;
  to_list: string;
  cc_list: string;
  bcc_list: string;
  subject: string;
  body: string;
  importance: string;
  ack_required: number;
  data: string | null;
  created_at: number;
}

interface RecipientRow extends Record<string, string | number | null> {
  agent: string;
  msg: number;
  kind: string;
  read_at: number | null;
  acked_at: number | null;
}

/** An inbox page's question, checked. */
export interface InboxRead {
  agent: string;
  unread: boolean;
  threadId?: string | undefined;
  since?: number | undefined;
  before?: number | undefined;
  limit: number;
  bodies: boolean;
}

/** Live copies for one inbox topic, published as one idempotent batch (`seq`) covering rows up to `upto`. */
export interface OutboxBatch {
  agent: string;
  topic: string;
  seq: number;
  upto: number;
  rows: OutboxRow[];
}

/** One outbox row: a live copy for one agent's inbox topic. */
export interface OutboxRow extends Record<string, string | number | null> {
  seq: number;
  agent: string;
  event: string;
}

/** Phrases SQLite and FTS5 use for a query they cannot parse (`fts5: syntax error near "AND"`, `no such column: x`). */
const BAD_QUERY = /fts5|syntax error|no such column|unterminated|unknown special query|malformed MATCH/i;

function state(r: RecipientRow): RecipientState {
  return { agent: r.agent, kind: r.kind as RecipientKind, readAt: r.read_at, ackedAt: r.acked_at };
}

/** The filters inbox reads and searches share, on the message `m`: thread, and a time range. */
function messageFilters(q: { threadId?: string; since?: number; until?: number }, where: string[], args: unknown[]): void {
  if (q.threadId !== undefined) {
    where.push("m.thread = ?");
    args.push(q.threadId);
  }
  if (q.since !== undefined) {
    where.push("m.created_at >= ?");
    args.push(q.since);
  }
  if (q.until !== undefined) {
    where.push("m.created_at < ?");
    args.push(q.until);
  }
}

export class MailStore {
  readonly #sql: SqlHandle;
  readonly #transaction: TransactionRunner;

  constructor(sql: SqlHandle, transaction: TransactionRunner) {
    this.#sql = sql;
    this.#transaction = transaction;
    sql.exec(`CREATE TABLE IF NOT EXISTS ml_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS ml_messages (
      id INTEGER PRIMARY KEY, thread TEXT NOT NULL, sender TEXT NOT NULL, to_list TEXT NOT NULL, cc_list TEXT NOT NULL,
      bcc_list TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, importance TEXT NOT NULL,
      ack_required INTEGER NOT NULL, data TEXT, created_at INTEGER NOT NULL)`);
    sql.exec(`CREATE INDEX IF NOT EXISTS ml_messages_thread ON ml_messages (thread, id)`);
    sql.exec(`CREATE INDEX IF NOT EXISTS ml_messages_sender ON ml_messages (sender, id)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS ml_recipients (
      agent TEXT NOT NULL, msg INTEGER NOT NULL, kind TEXT NOT NULL, read_at INTEGER, acked_at INTEGER,
      PRIMARY KEY (agent, msg)) WITHOUT ROWID`);
    sql.exec(`CREATE INDEX IF NOT EXISTS ml_recipients_msg ON ml_recipients (msg)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS ml_threads (
      id TEXT PRIMARY KEY, subject TEXT NOT NULL, started_at INTEGER NOT NULL, last_at INTEGER NOT NULL, messages INTEGER NOT NULL) WITHOUT ROWID`);
    sql.exec(`CREATE TABLE IF NOT EXISTS ml_agents (agent TEXT PRIMARY KEY) WITHOUT ROWID`);
    sql.exec(`CREATE VIRTUAL TABLE IF NOT EXISTS ml_fts USING fts5(subject, body, content='ml_messages', content_rowid='id', tokenize='porter unicode61')`);
    sql.exec(`CREATE TABLE IF NOT EXISTS ml_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL, event TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS ml_pub (agent TEXT PRIMARY KEY, seq INTEGER NOT NULL, upto INTEGER) WITHOUT ROWID`);
    const version = sql.exec<{ v: number }>(`SELECT v FROM ml_meta WHERE k = 'schema'`).toArray()[0]?.v;
    if (version === undefined) sql.exec(`INSERT INTO ml_meta (k, v) VALUES ('schema', ?)`, MAIL_SCHEMA_VERSION);
    else if (version !== MAIL_SCHEMA_VERSION) throw new Error(`mail: schema version ${version} is not ${MAIL_SCHEMA_VERSION}`);
  }

  // -------------------------------------------------------------------------------------------
  // Send

  /** Store a checked message for every recipient, with its live copies, in one transaction. */
  send(checked: CheckedSend, now: number): SentMail {
    const { mail, recipients, dataJson } = checked;
    return this.#transaction(() => {
      const importance: MailImportance = mail.importance ?? "normal";
      const to = recipients.filter((r) => r.kind === "to").map((r) => r.agent);
      const cc = recipients.filter((r) => r.kind === "cc").map((r) => r.agent);
      const bcc = recipients.filter((r) => r.kind === "bcc").map((r) => r.agent);
      const body = mail.bodyMd ?? "";
      const row = this.#sql
        .exec<{ id: number }>(
          `INSERT INTO ml_messages (thread, sender, to_list, cc_list, bcc_list, subject, body, importance, ack_required, data, created_at)
           VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
          mail.from,
          JSON.stringify(to),
          JSON.stringify(cc),
          JSON.stringify(bcc),
          mail.subject,
          body,
          importance,
          mail.ackRequired ? 1 : 0,
          dataJson,
          now,
        )
        .one();
      const id = row.id;
      // A message that names no thread starts one named by its own id.
      const threadId = mail.threadId ?? String(id);
      this.#sql.exec(`UPDATE ml_messages SET thread = ? WHERE id = ?`, threadId, id);
      this.#sql.exec(
        `INSERT INTO ml_threads (id, subject, started_at, last_at, messages) VALUES (?, ?, ?, ?, 1)
         ON CONFLICT (id) DO UPDATE SET last_at = excluded.last_at, messages = messages + 1`,
        threadId,
        mail.subject,
        now,
        now,
      );
      this.#sql.exec(`INSERT INTO ml_fts (rowid, subject, body) VALUES (?, ?, ?)`, id, mail.subject, body);
      this.#sql.exec(`INSERT OR IGNORE INTO ml_agents (agent) VALUES (?)`, mail.from);
      const message: MailMessage = {
        id,
        threadId,
        from: mail.from,
        to,
        cc,
        subject: mail.subject,
        bodyMd: body,
        importance,
        ackRequired: mail.ackRequired === true,
        createdAt: now,
      };
      if (dataJson !== null) message.data = JSON.parse(dataJson) as unknown;
      for (const r of recipients) {
        this.#sql.exec(`INSERT INTO ml_recipients (agent, msg, kind, read_at, acked_at) VALUES (?, ?, ?, NULL, NULL)`, r.agent, id, r.kind);
        this.#sql.exec(`INSERT OR IGNORE INTO ml_agents (agent) VALUES (?)`, r.agent);
        const delivery: MailDelivery = {
          kind: "mail",
          agent: r.agent,
          message: { ...message, recipient: { agent: r.agent, kind: r.kind, readAt: null, ackedAt: null } },
        };
        this.#sql.exec(`INSERT INTO ml_outbox (agent, event) VALUES (?, ?)`, r.agent, JSON.stringify(delivery));
      }
      return { id, threadId, createdAt: now, recipients: recipients.length };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /** A page of `agent`'s inbox, newest first. */
  inbox(q: InboxRead, reader: MailReader): { messages: MailMessage[]; next?: number } {
    const where = ["r.agent = ?"];
    const args: unknown[] = [q.agent];
    if (q.before !== undefined) {
      where.push("r.msg < ?");
      args.push(q.before);
    }
    if (q.unread) where.push("r.read_at IS NULL");
    messageFilters(q, where, args);
    const rows = this.#sql
      .exec<MessageRow & { kind: string; read_at: number | null; acked_at: number | null }>(
        `SELECT m.*, r.kind, r.read_at, r.acked_at FROM ml_recipients r JOIN ml_messages m ON m.id = r.msg
         WHERE ${where.join(" AND ")} ORDER BY r.msg DESC LIMIT ?`,
        ...args,
        q.limit + 1,
      )
      .toArray();
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    const messages = page.map((row) => {
      const m = this.#view(row, reader, q.bodies);
      m.recipient = { agent: q.agent, kind: row.kind as RecipientKind, readAt: row.read_at, ackedAt: row.acked_at };
      return m;
    });
    return more ? { messages, next: page[page.length - 1]!.id } : { messages };
  }

  /** Message `id` as `agent` (a recipient or the sender) reads it, or `not_found`. */
  read(agent: string, id: number, reader: MailReader): MailMessage {
    const row = this.#sql.exec<MessageRow>(`SELECT * FROM ml_messages WHERE id = ?`, id).toArray()[0];
    const own = this.#sql.exec<RecipientRow>(`SELECT * FROM ml_recipients WHERE agent = ? AND msg = ?`, agent, id).toArray()[0];
    if (!row || (!own && row.sender !== agent)) throw new DovetailError("not_found", `agent ${agent} has no message ${id}`);
    const m = this.#view(row, reader, true);
    if (own) m.recipient = state(own);
    return m;
  }

  /** Mark message `id` read (`ack`: acknowledged, which also reads it) for recipient `agent`; the time stays that of the first call. */
  mark(agent: string, id: number, ack: boolean, now: number): RecipientState {
    const own = this.#sql.exec<RecipientRow>(`SELECT * FROM ml_recipients WHERE agent = ? AND msg = ?`, agent, id).toArray()[0];
    if (!own) throw new DovetailError("not_found", `agent ${agent} has no message ${id} in its inbox`);
    const readAt = own.read_at ?? now;
    const ackedAt = ack ? (own.acked_at ?? now) : own.acked_at;
    if (readAt !== own.read_at || ackedAt !== own.acked_at) {
      this.#sql.exec(`UPDATE ml_recipients SET read_at = ?, acked_at = ? WHERE agent = ? AND msg = ?`, readAt, ackedAt, agent, id);
    }
    return { agent, kind: own.kind as RecipientKind, readAt, ackedAt };
  }

  /** Is message `id` one `ack` applies to (it asked for acknowledgement)? */
  ackRequired(id: number): boolean {
    return this.#sql.exec<{ a: number }>(`SELECT ack_required AS a FROM ml_messages WHERE id = ?`, id).toArray()[0]?.a === 1;
  }

  /**
   * A thread in order with the recipients' read and acknowledgement state, only the messages the
   * reader may read (sent or received by an agent it may read). `not_found` when it sees none.
   */
  thread(threadId: string, after: number, limit: number, reader: MailReader): { messages: MailMessage[]; next?: number } {
    const rows = this.#sql.exec<MessageRow>(`SELECT * FROM ml_messages WHERE thread = ? AND id > ? ORDER BY id LIMIT ?`, threadId, after, limit + 1).toArray();
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const messages: MailMessage[] = [];
    for (const row of page) {
      const recipients = this.#sql
        .exec<RecipientRow>(`SELECT * FROM ml_recipients WHERE msg = ? ORDER BY CASE kind WHEN 'to' THEN 0 WHEN 'cc' THEN 1 ELSE 2 END, agent`, row.id)
        .toArray();
      if (!reader.all && !reader.mayRead(row.sender) && !recipients.some((r) => reader.mayRead(r.agent))) continue;
      const m = this.#view(row, reader, true);
      m.recipients = recipients.filter((r) => this.#seesRecipient(row, r, reader)).map(state);
      messages.push(m);
    }
    if (messages.length === 0 && after === 0) throw new DovetailError("not_found", `no thread ${threadId} that this credential may read`);
    return more ? { messages, next: page[page.length - 1]!.id } : { messages };
  }

  /**
   * Full-text search with FTS5: ranked by BM25 (subject matches weigh more), snippets with each
   * match in `**`, filters, and only what the reader may read. A query FTS5 cannot parse is
   * `invalid_query`.
   */
  search(
    q: SearchQuery & { limit: number; offset: number },
    reader: MailReader,
  ): { hits: { message: MailMessage; rank: number; snippets: { subject: string; body: string } }[]; next?: number } {
    const where = ["ml_fts MATCH ?"];
    const args: unknown[] = [q.q];
    let readable: string | null = null;
    if (!reader.all) {
      const agents = this.#sql
        .exec<{ agent: string }>(`SELECT agent FROM ml_agents`)
        .toArray()
        .map((r) => r.agent)
        .filter((a) => reader.mayRead(a));
      if (agents.length === 0) return { hits: [] };
      readable = JSON.stringify(agents);
      where.push(
        `(m.sender IN (SELECT value FROM json_each(?)) OR EXISTS (SELECT 1 FROM ml_recipients v WHERE v.msg = m.id AND v.agent IN (SELECT value FROM json_each(?))))`,
      );
      args.push(readable, readable);
    }
    if (q.from !== undefined) {
      where.push("m.sender = ?");
      args.push(q.from);
    }
    if (q.to !== undefined) {
      // A bcc recipient counts only for a reader who may see it (the sender's readers, or its own).
      if (readable === null) where.push("EXISTS (SELECT 1 FROM ml_recipients t WHERE t.msg = m.id AND t.agent = ?)");
      else {
        where.push(`EXISTS (SELECT 1 FROM ml_recipients t WHERE t.msg = m.id AND t.agent = ? AND (t.kind != 'bcc'
          OR t.agent IN (SELECT value FROM json_each(?)) OR m.sender IN (SELECT value FROM json_each(?))))`);
        args.push(q.to, readable, readable);
      }
      if (readable === null) args.push(q.to);
    }
    messageFilters(q, where, args);
    let rows: (MessageRow & { rank: number; s_subject: string; s_body: string })[];
    try {
      rows = this.#sql
        .exec<MessageRow & { rank: number; s_subject: string; s_body: string }>(
          `SELECT m.*, bm25(ml_fts, 4.0, 1.0) AS rank,
             snippet(ml_fts, 0, '**', '**', '…', 12) AS s_subject, snippet(ml_fts, 1, '**', '**', '…', 24) AS s_body
           FROM ml_fts JOIN ml_messages m ON m.id = ml_fts.rowid
           WHERE ${where.join(" AND ")} ORDER BY rank LIMIT ? OFFSET ?`,
          ...args,
          q.limit + 1,
          q.offset,
        )
        .toArray();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (BAD_QUERY.test(message)) {
        throw new DovetailError("invalid_query", `not a valid FTS5 query (${message.replace(/: SQLITE_ERROR$/, "").slice(0, 200)}); quote words with "…"`);
      }
      throw error;
    }
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    const hits = page.map((row) => ({ message: this.#view(row, reader, true), rank: row.rank, snippets: { subject: row.s_subject, body: row.s_body } }));
    return more ? { hits, next: q.offset + q.limit } : { hits };
  }

  /** Every agent that sent or received mail. */
  agents(): string[] {
    return this.#sql
      .exec<{ agent: string }>(`SELECT agent FROM ml_agents`)
      .toArray()
      .map((r) => r.agent);
  }

  /** How many messages are stored. */
  count(): number {
    return this.#sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ml_messages`).one().n;
  }

  /** May the reader see that `r` received `row`? bcc only for the sender's readers and the bcc recipient's own. */
  #seesRecipient(row: MessageRow, r: RecipientRow, reader: MailReader): boolean {
    return r.kind !== "bcc" || reader.all || reader.mayRead(row.sender) || reader.mayRead(r.agent);
  }

  #view(row: MessageRow, reader: MailReader, withBody: boolean): MailMessage {
    const m: MailMessage = {
      id: row.id,
      threadId: row.thread,
      from: row.sender,
      to: JSON.parse(row.to_list) as string[],
      cc: JSON.parse(row.cc_list) as string[],
      subject: row.subject,
      importance: row.importance as MailImportance,
      ackRequired: row.ack_required === 1,
      createdAt: row.created_at,
    };
    if (reader.all || reader.mayRead(row.sender)) m.bcc = JSON.parse(row.bcc_list) as string[];
    if (withBody) m.bodyMd = row.body;
    if (row.data !== null) m.data = JSON.parse(row.data) as unknown;
    return m;
  }

  // -------------------------------------------------------------------------------------------
  // Outbox: live copies to inbox topics (published by objects/mail.ts)

  /**
   * The next batches, one per inbox topic for up to `maxAgents` agents: first the batches already
   * sent once and not confirmed (exactly as they were, under the same sequence, so the topic
   * stores them once), then the oldest waiting agents' next rows (at most `maxRows` and
   * `maxBytes`), recorded as sent before they are.
   */
  nextBatches(maxAgents: number, maxRows: number, maxBytes: number): OutboxBatch[] {
    return this.#transaction(() => {
      const batches: OutboxBatch[] = [];
      for (const p of this.#sql.exec<{ agent: string; seq: number; upto: number }>(`SELECT agent, seq, upto FROM ml_pub WHERE upto IS NOT NULL`).toArray()) {
        const rows = this.#sql.exec<OutboxRow>(`SELECT * FROM ml_outbox WHERE agent = ? AND seq <= ? ORDER BY seq`, p.agent, p.upto).toArray();
        if (rows.length > 0) batches.push({ agent: p.agent, topic: inboxTopic(p.agent), seq: p.seq, upto: p.upto, rows });
        else this.#sql.exec(`UPDATE ml_pub SET upto = NULL WHERE agent = ?`, p.agent);
      }
      if (batches.length >= maxAgents) return batches;
      const taken = new Set(batches.map((b) => b.agent));
      const waiting = this.#sql
        .exec<{ agent: string }>(`SELECT agent FROM ml_outbox GROUP BY agent ORDER BY MIN(seq) LIMIT ?`, maxAgents + taken.size)
        .toArray()
        .filter((r) => !taken.has(r.agent))
        .slice(0, maxAgents - batches.length);
      for (const { agent } of waiting) {
        const rows: OutboxRow[] = [];
        let bytes = 0;
        for (const row of this.#sql.exec<OutboxRow>(`SELECT * FROM ml_outbox WHERE agent = ? ORDER BY seq LIMIT ?`, agent, maxRows).toArray()) {
          bytes += utf8ByteLength(row.event);
          if (rows.length > 0 && bytes > maxBytes) break;
          rows.push(row);
        }
        const upto = rows[rows.length - 1]!.seq;
        const seq = this.#sql.exec<{ seq: number }>(`SELECT seq FROM ml_pub WHERE agent = ?`, agent).toArray()[0]?.seq ?? 0;
        this.#sql.exec(`INSERT INTO ml_pub (agent, seq, upto) VALUES (?, ?, ?) ON CONFLICT (agent) DO UPDATE SET upto = excluded.upto`, agent, seq, upto);
        batches.push({ agent, topic: inboxTopic(agent), seq, upto, rows });
      }
      return batches;
    });
  }

  /** The topic stored the batch: its rows go, the next batch takes the next sequence. */
  published(agent: string, upto: number): void {
    this.#transaction(() => {
      this.#sql.exec(`DELETE FROM ml_outbox WHERE agent = ? AND seq <= ?`, agent, upto);
      this.#sql.exec(`UPDATE ml_pub SET seq = seq + 1, upto = NULL WHERE agent = ?`, agent);
    });
  }

  hasOutbox(): boolean {
    return this.#sql.exec(`SELECT 1 FROM ml_outbox LIMIT 1`).toArray().length > 0;
  }
}
