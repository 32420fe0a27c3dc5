/**
 * Mail: one tenant's agent mail, one Durable Object per tenant (named by the tenant,
 * protocol/mail.ts `mailObjectName`), beside the Directory and the Registry (docs/mail.md,
 * decision 032). It holds the messages, inboxes, threads and the FTS5 index in SQLite
 * (objects/mail-store.ts), and publishes a live copy of each delivered message to the
 * recipient's inbox topic (`_mail.<agent>`) through the Topic object's `publish` RPC, from an
 * outbox written in the send's transaction, as an idempotent producer: each copy is stored once,
 * after the message.
 *
 * Its RPC methods are the whole server-side API of mail: each takes the caller's credential
 * (`MailCaller`: its id and scopes, which only the gateway can hand it) and checks everything
 * itself: the input with the zod schemas of protocol/mail-schemas.ts, the permission with the one
 * scope matcher (protocol/scopes.ts) on the agents' inbox topics, the per-agent rate limit, and
 * that senders and recipients are agents of the tenant's registry. The HTTP routes
 * (workers/routes/mail.ts) and an MCP tool call the same methods and get the same answers.
 *
 * @example
 * const mail = env.MAIL.get(env.MAIL.idFromName(mailObjectName(tenant)));
 * unwrap(await mail.send(credential, { from: "planner", to: ["coder"], subject: "build", bodyMd: "…" }));
 */
import { DurableObject } from "cloudflare:workers";
import { RunAgain } from "./run-again.ts";
import { DovetailError } from "../protocol/errors.ts";
import {
  agentIdSchema,
  checkSend,
  inboxQuerySchema,
  mailIdSchema,
  parseMailInput,
  searchQuerySchema,
  threadIdSchema,
  threadQuerySchema,
} from "../protocol/mail-schemas.ts";
import {
  DEFAULT_MAIL_PAGE,
  inboxTopic,
  MAIL_PRODUCER_ID,
  type InboxPage,
  type InboxQuery,
  type MailMessage,
  type MailState,
  type SearchPage,
  type SearchQuery,
  type SentMail,
  type ThreadPage,
  type ThreadQuery,
} from "../protocol/mail.ts";
import { registryObjectName } from "../protocol/agents.ts";
import { allows, type Scope } from "../protocol/scopes.ts";
import { topicObjectName } from "../protocol/topic-address.ts";
import type { ObjectsEnv } from "./env.ts";
import { fullBucket, takeTokens, type Bucket } from "./frame-limiter.ts";
import { MailStore, type MailReader, type OutboxBatch } from "./mail-store.ts";
import { rpcResult, unwrap, type RpcResult } from "./rpc-result.ts";

/** Who calls: the credential's id and scopes (protocol/credential.ts `Credential` fits). */
export interface MailCaller {
  id: string;
  scopes: Scope[];
}

/** Per-agent request limit (issue 15: 100 requests/s, bursts of 200), overridden by the `MAIL_RATE_PER_SECOND` and `MAIL_RATE_BURST` vars. */
export const DEFAULT_MAIL_RATE_PER_SECOND = 100;
export const DEFAULT_MAIL_RATE_BURST = 200;
/**
 * How long a registry answer "this agent exists" is reused. Sends name the same agents again and
 * again; asking the Registry each time would put a second object on every send's path. An agent
 * removed from the registry can thus still receive mail this long.
 */
const KNOWN_AGENT_MS = 10_000;
/** Live copies: inbox topics published to at once, rows and bytes per batch (the topic takes 1,000 messages and 8 MiB). */
const PUBLISH_AGENTS = 16;
const PUBLISH_ROWS = 500;
const PUBLISH_BYTES = 4 * 1024 * 1024;
/** A failed publish is tried again after this long (by alarm, so a restart does not lose it). */
const PUBLISH_RETRY_MS = 1_000;
/** Buckets of agents idle this long are forgotten (a full bucket is the same as none). */
const BUCKET_IDLE_MS = 60_000;

function positive(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

/** A pattern that covers every inbox topic (`_mail.<one segment>`): the reader may read all mail. */
const EVERY_INBOX = /^(?:>|(?:_mail|\*)\.(?:\*|>))$/;

function readerOf(caller: MailCaller): MailReader {
  const all = caller.scopes.some((s) => s.action === "subscribe" && EVERY_INBOX.test(s.pattern));
  const memo = new Map<string, boolean>();
  return {
    all,
    mayRead(agent) {
      if (all) return true;
      let yes = memo.get(agent);
      if (yes === undefined) memo.set(agent, (yes = allows(caller.scopes, "subscribe", inboxTopic(agent))));
      return yes;
    },
  };
}

export class Mail extends DurableObject<ObjectsEnv> {
  readonly #store: MailStore;
  readonly #ratePerSecond: number;
  readonly #rateBurst: number;
  readonly #buckets = new Map<string, Bucket>();
  /** Agent id → until when the registry's "it exists" is trusted. */
  readonly #known = new Map<string, number>();
  /** Publishes the outbox of live copies, one run at a time. */
  readonly #publishing = new RunAgain(
    () => this.#publishOutbox(),
    (error) => this.#publishFailed(error),
  );

  constructor(ctx: DurableObjectState, env: ObjectsEnv) {
    super(ctx, env);
    this.#store = new MailStore(ctx.storage.sql, (fn) => ctx.storage.transactionSync(fn));
    this.#ratePerSecond = positive(env.MAIL_RATE_PER_SECOND, "MAIL_RATE_PER_SECOND", DEFAULT_MAIL_RATE_PER_SECOND);
    this.#rateBurst = positive(env.MAIL_RATE_BURST, "MAIL_RATE_BURST", DEFAULT_MAIL_RATE_BURST);
    if (this.#store.hasOutbox()) this.#flush();
  }

  // -------------------------------------------------------------------------------------------
  // RPC: the mail API. Every method checks input, permission and rate itself.

  /** Send a message (`SendMail`); stored for every recipient in one commit, or refused with nothing stored. */
  async send(caller: MailCaller, input: unknown): Promise<RpcResult<SentMail>> {
    return rpcResult(async () => {
      const checked = checkSend(input);
      const from = checked.mail.from;
      if (!allows(caller.scopes, "publish", inboxTopic(from))) {
        throw new DovetailError("forbidden", `this credential may not send as agent ${from} (it needs publish on ${inboxTopic(from)})`);
      }
      this.#admit(from);
      await this.#checkAgents([from, ...checked.recipients.map((r) => r.agent)], from);
      const sent = this.#store.send(checked, Date.now());
      this.#flush();
      return sent;
    });
  }

  /** A page of `agent`'s inbox, newest first (`InboxQuery`). */
  async inbox(caller: MailCaller, agent: string, query: InboxQuery = {}): Promise<RpcResult<InboxPage>> {
    return rpcResult(() => {
      const reader = this.#reading(caller, agent);
      const q = parseMailInput(inboxQuerySchema, query) as InboxQuery;
      const page = this.#store.inbox(
        {
          agent,
          unread: q.unread === true,
          threadId: q.threadId,
          since: q.since,
          before: q.before,
          limit: q.limit ?? DEFAULT_MAIL_PAGE,
          bodies: q.bodies === true,
        },
        reader,
      );
      return { agent, ...page };
    });
  }

  /** Message `id` as `agent` (a recipient or its sender) sees it. */
  async read(caller: MailCaller, agent: string, id: number): Promise<RpcResult<MailMessage>> {
    return rpcResult(() => {
      const reader = this.#reading(caller, agent);
      return this.#store.read(agent, parseMailInput(mailIdSchema, id), reader);
    });
  }

  /** Mark message `id` read in `agent`'s inbox (idempotent: the first time stays). */
  async markRead(caller: MailCaller, agent: string, id: number): Promise<RpcResult<MailState>> {
    return rpcResult(() => {
      this.#reading(caller, agent);
      const mailId = parseMailInput(mailIdSchema, id);
      return { id: mailId, ...this.#store.mark(agent, mailId, false, Date.now()) };
    });
  }

  /** Acknowledge message `id` for `agent` (which also marks it read). */
  async ack(caller: MailCaller, agent: string, id: number): Promise<RpcResult<MailState>> {
    return rpcResult(() => {
      this.#reading(caller, agent);
      const mailId = parseMailInput(mailIdSchema, id);
      return { id: mailId, ...this.#store.mark(agent, mailId, true, Date.now()) };
    });
  }

  /** A thread in order with read and acknowledgement state: only the messages the caller may read. */
  async thread(caller: MailCaller, threadId: string, query: ThreadQuery = {}): Promise<RpcResult<ThreadPage>> {
    return rpcResult(() => {
      const id = parseMailInput(threadIdSchema, threadId);
      const q = parseMailInput(threadQuerySchema, query) as ThreadQuery;
      this.#admit(`cred:${caller.id}`);
      return { threadId: id, ...this.#store.thread(id, q.after ?? 0, q.limit ?? DEFAULT_MAIL_PAGE, readerOf(caller)) };
    });
  }

  /** Full-text search over the mail the caller may read (`SearchQuery`); `invalid_query` for a query FTS5 cannot parse. */
  async search(caller: MailCaller, query: SearchQuery): Promise<RpcResult<SearchPage>> {
    return rpcResult(() => {
      const q = parseMailInput(searchQuerySchema, query) as SearchQuery;
      this.#admit(`cred:${caller.id}`);
      return this.#store.search({ ...q, limit: q.limit ?? DEFAULT_MAIL_PAGE, offset: q.offset ?? 0 }, readerOf(caller));
    });
  }

  /** How many messages the tenant holds (tests and the bench). */
  async count(): Promise<number> {
    return this.#store.count();
  }

  /** The caller reads `agent`'s mail: a valid id, `subscribe` on its inbox topic, and its rate. */
  #reading(caller: MailCaller, agent: string): MailReader {
    parseMailInput(agentIdSchema, agent);
    const topic = inboxTopic(agent);
    if (!allows(caller.scopes, "subscribe", topic)) {
      throw new DovetailError("forbidden", `this credential may not read agent ${agent}'s mail (it needs subscribe on ${topic})`);
    }
    this.#admit(agent);
    return readerOf(caller);
  }

  /** Take one request from `key`'s bucket, or refuse with `rate_limited` and how long to wait. */
  #admit(key: string): void {
    const now = Date.now();
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size > 10_000) {
        for (const [k, b] of this.#buckets) if (now - b.at > BUCKET_IDLE_MS) this.#buckets.delete(k);
      }
      this.#buckets.set(key, (bucket = fullBucket(this.#rateBurst, now)));
    }
    const wait = takeTokens(bucket, this.#ratePerSecond, this.#rateBurst, 1, now);
    if (wait > 0) {
      const who = key.startsWith("cred:") ? "this credential" : `agent ${key}`;
      throw new DovetailError("rate_limited", `too many mail requests for ${who}; retry after ${wait} ms`, { retryAfterMs: wait });
    }
  }

  /** Every agent named is registered in the tenant's registry (`unknown_recipient` names those that are not). */
  async #checkAgents(agents: string[], from: string): Promise<void> {
    const now = Date.now();
    const ask = [...new Set(agents)].filter((a) => (this.#known.get(a) ?? 0) <= now);
    if (ask.length === 0) return;
    const tenant = this.ctx.id.name;
    if (!tenant) throw new Error("mail object without a tenant name");
    const registry = this.env.REGISTRY.get(this.env.REGISTRY.idFromName(registryObjectName(tenant)));
    const answers = await Promise.all(ask.map((a) => registry.get(a)));
    const unknown: string[] = [];
    answers.forEach((answer, k) => {
      if (answer.ok) this.#known.set(ask[k]!, now + KNOWN_AGENT_MS);
      else if (answer.error.code === "not_found") unknown.push(ask[k]!);
      else unwrap(answer);
    });
    if (unknown.includes(from))
      throw new DovetailError("unknown_recipient", `the sender ${from} is not a registered agent of this tenant (register it first: POST /v1/agents)`);
    if (unknown.length > 0) {
      throw new DovetailError(
        "unknown_recipient",
        `not registered agents of this tenant: ${unknown.slice(0, 10).join(", ")}${unknown.length > 10 ? ", …" : ""}; nothing was sent`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Live copies: outbox → each recipient's inbox topic, in order, exactly once.

  override async alarm(): Promise<void> {
    if (this.#store.hasOutbox()) this.#flush();
  }

  /** Publish the outbox in the background: one flush at a time, going round again for mail sent meanwhile. */
  #flush(): void {
    this.#publishing.run();
  }

  /** A failed publish of the outbox: retried later. */
  async #publishFailed(error: unknown): Promise<void> {
    console.error("mail: publishing live copies failed; retrying", error);
    await this.ctx.storage.setAlarm(Date.now() + PUBLISH_RETRY_MS);
  }

  async #publishOutbox(): Promise<void> {
    const tenant = this.ctx.id.name;
    if (!tenant) throw new Error("mail object without a tenant name");
    for (;;) {
      const batches = this.#store.nextBatches(PUBLISH_AGENTS, PUBLISH_ROWS, PUBLISH_BYTES);
      if (batches.length === 0) return;
      // The batches' records ("sent up to") must be durable before they are sent: a batch cut
      // off by a crash is then sent again identical, and the topic stores it once.
      await this.ctx.storage.sync();
      await Promise.all(batches.map((b) => this.#publish(tenant, b)));
    }
  }

  async #publish(tenant: string, batch: OutboxBatch): Promise<void> {
    const topic = this.env.TOPIC.get(this.env.TOPIC.idFromName(topicObjectName(tenant, batch.topic)));
    const messages = batch.rows.map((r) => ({ key: batch.agent, data: JSON.parse(r.event) as unknown }));
    unwrap(await topic.publish(batch.topic, messages, { id: MAIL_PRODUCER_ID, seq: batch.seq }));
    this.#store.published(batch.agent, batch.upto);
  }
}
