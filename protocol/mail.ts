/**
 * Agent mail on the wire (docs/mail.md): addressed messages between a tenant's registered agents,
 * per-agent inboxes with read and acknowledgement state, threads, and full-text search. The Mail
 * object (objects/mail.ts), the gateway (workers/routes/mail.ts) and the SDK (sdk/src/mail.ts)
 * import this module; it builds no schema, so clients never load zod (decision 025). The server's
 * checks of what clients send are in mail-schemas.ts.
 *
 * Permissions reuse the scope grammar (protocol/scopes.ts) on each agent's inbox topic,
 * {@link inboxTopic}: `subscribe` on it reads that agent's mail (its inbox, the mail it sent,
 * threads and search over them) and marks it read or acknowledged; `publish` on it sends as that
 * agent. The same topic carries the live copies of the agent's new mail, so whoever may read an
 * inbox may also watch it, with the topic's resume (offsets) and catch-up.
 *
 * Compatibility rule as for every v1 shape: receivers ignore fields they do not know; fields may
 * be added within version 1.
 */

/** Longest subject, in characters. */
export const MAX_MAIL_SUBJECT_LENGTH = 512;
/** Largest Markdown body, in UTF-8 bytes (`message_too_large` above it). */
export const MAX_MAIL_BODY_BYTES = 64 * 1024;
/** Largest structured `data`, as JSON text in UTF-8 bytes. */
export const MAX_MAIL_DATA_BYTES = 16 * 1024;
/** Most recipients of one message, to + cc + bcc together (after removing duplicates). */
export const MAX_MAIL_RECIPIENTS = 100;
/** Thread ids: 1–128 of `A-Z a-z 0-9 _ . : -` (as agent ids). A message that names none starts a thread whose id is its own id. */
export const THREAD_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Page sizes of the inbox, thread and search answers. */
export const DEFAULT_MAIL_PAGE = 50;
export const MAX_MAIL_PAGE = 500;
/** Longest search query, in characters. */
export const MAX_MAIL_QUERY_LENGTH = 1024;
/** Largest send request body (a body and data at their limits, JSON-escaped, with every recipient). */
export const MAX_MAIL_REQUEST_BYTES = 256 * 1024;

export const MAIL_IMPORTANCE = ["low", "normal", "high", "urgent"] as const;
export type MailImportance = (typeof MAIL_IMPORTANCE)[number];

/** How an agent received a message. */
export type RecipientKind = "to" | "cc" | "bcc";

/** The producer id under which the mail object publishes live copies to inbox topics. */
export const MAIL_PRODUCER_ID = "dovetail-mail";

/** Durable Object name of a tenant's Mail object. */
export function mailObjectName(tenant: string): string {
  return tenant;
}

/**
 * The inbox topic of agent `agent`: `_mail.` then the id with `.` written `~d` and `:` written
 * `~c` (agent ids may hold both, topic names use `.` as a separator and refuse `:`; `~` is in no
 * agent id, so the mapping is one to one). So `_mail.*` names every inbox of the tenant and a
 * scope `subscribe:_mail.*` reads all mail.
 *
 * @example
 * inboxTopic("planner")      // "_mail.planner"
 * inboxTopic("planner.eu:1") // "_mail.planner~deu~c1"
 */
export function inboxTopic(agent: string): string {
  return `_mail.${agent.replace(/[.:]/g, (ch) => (ch === "." ? "~d" : "~c"))}`;
}

/** What `POST /v1/mail/messages` takes. */
export interface SendMail {
  /** The sending agent (a registered agent; the caller needs `publish` on its inbox topic). */
  from: string;
  to: string[];
  cc?: string[];
  /** Told to nobody but the sender's readers and the bcc recipient itself. */
  bcc?: string[];
  subject: string;
  /** Markdown; at most {@link MAX_MAIL_BODY_BYTES}. */
  bodyMd?: string;
  /** Join this thread (a reply); a new thread otherwise. */
  threadId?: string;
  importance?: MailImportance;
  /** Recipients are asked to acknowledge it (`POST …/ack`). */
  ackRequired?: boolean;
  /** Structured JSON for programs, at most {@link MAX_MAIL_DATA_BYTES}. */
  data?: unknown;
}

/** The answer to a send. */
export interface SentMail {
  id: number;
  threadId: string;
  createdAt: number;
  /** Recipients after removing duplicates (to, cc and bcc). */
  recipients: number;
}

/** One recipient's state, as a reader is allowed to see it. */
export interface RecipientState {
  agent: string;
  kind: RecipientKind;
  /** When the agent marked it read (ms since the epoch), or null. */
  readAt: number | null;
  /** When the agent acknowledged it, or null. */
  ackedAt: number | null;
}

/**
 * A message as one reader sees it. `bcc` is present only for a reader of the sender's mailbox;
 * `recipients` lists the bcc recipients only to those readers and to the bcc recipient itself.
 */
export interface MailMessage {
  id: number;
  threadId: string;
  from: string;
  to: string[];
  cc: string[];
  bcc?: string[];
  subject: string;
  /** Absent in inbox pages asked without `bodies=true`. */
  bodyMd?: string;
  importance: MailImportance;
  ackRequired: boolean;
  data?: unknown;
  createdAt: number;
  /** In an inbox: the inbox owner's own state. */
  recipient?: RecipientState;
  /** In a thread: every recipient's state that the reader may see. */
  recipients?: RecipientState[];
}

/** A page of an inbox, newest first. `next` is the `before` of the next page, absent at the end. */
export interface InboxPage {
  agent: string;
  messages: MailMessage[];
  next?: number;
}

/** A thread in order, oldest first, with read and acknowledgement state. */
export interface ThreadPage {
  threadId: string;
  messages: MailMessage[];
  next?: number;
}

/** One search hit: the message and FTS5's highlighted snippets of its subject and body. */
export interface SearchHit {
  message: MailMessage;
  /** BM25 rank from FTS5: lower is a better match. */
  rank: number;
  /** Subject and body excerpts with each match between `**` and `**` (Markdown bold). */
  snippets: { subject: string; body: string };
}

export interface SearchPage {
  hits: SearchHit[];
  /** The `offset` of the next page, absent at the end. */
  next?: number;
}

/** What `markRead` and `ack` answer. */
export interface MailState extends RecipientState {
  id: number;
}

/** The inbox query (`GET /v1/mail/inbox/{agent}`). */
export interface InboxQuery {
  /** Only messages not marked read. */
  unread?: boolean;
  /** Only this thread. */
  threadId?: string;
  /** Only messages created at or after this time (ms since the epoch). */
  since?: number;
  /** Only messages with an id below this (paging: the last page's `next`). */
  before?: number;
  limit?: number;
  /** Include each message's body. */
  bodies?: boolean;
}

/** The thread query (`GET /v1/mail/threads/{thread}`). */
export interface ThreadQuery {
  /** Only messages with an id above this (paging). */
  after?: number;
  limit?: number;
}

/** The search query (`GET /v1/mail/search`). */
export interface SearchQuery {
  /** An FTS5 query over subject and body (`deploy AND failed`, `"exact phrase"`, `subject:release`, `migrat*`). */
  q: string;
  /** Only mail sent by this agent. */
  from?: string;
  /** Only mail to this agent (to, cc, or bcc the reader may see). */
  to?: string;
  threadId?: string;
  since?: number;
  until?: number;
  /** Skip this many hits (paging: the last page's `next`). */
  offset?: number;
  limit?: number;
}

/**
 * The live copy the mail object publishes to an inbox topic per delivered message: the
 * recipient's view of it (`recipient` is that agent's state at delivery).
 */
export interface MailDelivery {
  kind: "mail";
  agent: string;
  message: MailMessage;
}

/** The query string of an inbox, thread or search request (SDK and CLI), without `?`. */
export function mailQueryString(query: object): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== null) params.set(name, String(value));
  return params.toString();
}
