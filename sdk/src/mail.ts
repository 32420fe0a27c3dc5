/**
 * `bus.mail`: agent mail (docs/mail.md), loaded on first use. The bus keeps only a proxy that
 * imports this chunk when a method is first called (sdk/src/client.ts `mail`), so a browser app
 * that only publishes and subscribes does not carry it (decision 025).
 *
 * Every method is one HTTP call to `/v1/mail/…`, except `watch()`, which subscribes to the agent's
 * inbox topic (`_mail.<agent>`) where the bus publishes a copy of each message delivered to it.
 */
import {
  inboxTopic,
  mailQueryString,
  type InboxPage,
  type InboxQuery,
  type MailDelivery,
  type MailMessage,
  type MailState,
  type SearchPage,
  type SearchQuery,
  type SendMail,
  type SentMail,
  type ThreadPage,
  type ThreadQuery,
} from "../../protocol/mail.ts";
import type { Message } from "./message.ts";
import type { SubscribeOptions, Subscription } from "./subscription.ts";
import type { WaitOptions } from "./wait.ts";

export type { InboxPage, InboxQuery, MailDelivery, MailMessage, MailState, SearchPage, SearchQuery, SendMail, SentMail, ThreadPage, ThreadQuery };

/**
 * `bus.mail`: every method of {@link MailClient}, answering a promise (the chunk is loaded by the
 * first call); `watch()` thus resolves to its subscription.
 */
export type MailApi = { [K in keyof MailClient]: (...args: Parameters<MailClient[K]>) => Promise<Awaited<ReturnType<MailClient[K]>>> };

/** What the chunk needs from the bus. */
export interface MailContext {
  request(method: string, path: string, body?: unknown, options?: WaitOptions): Promise<unknown>;
  subscribe(topic: string, options: SubscribeOptions): Subscription;
}

/** Options of {@link MailClient.watch}: where to start in the inbox topic (an offset to resume after a restart), and the subscription's own options. */
export type MailWatchOptions = SubscribeOptions<MailDelivery>;

const enc = encodeURIComponent;

export class MailClient {
  readonly #ctx: MailContext;

  /** @internal use `bus.mail` */
  constructor(ctx: MailContext) {
    this.#ctx = ctx;
  }

  /**
   * Send a message: stored for every recipient in one commit, or refused with nothing stored
   * (`unknown_recipient`, `forbidden`, `message_too_large`, `invalid_field`).
   *
   * @example
   * const { id, threadId } = await bus.mail.send({ from: "planner", to: ["coder"], subject: "build", bodyMd: "Please build **main**." });
   */
  send(mail: SendMail, options?: WaitOptions): Promise<SentMail> {
    return this.#ctx.request("POST", "/v1/mail/messages", mail, options) as Promise<SentMail>;
  }

  /** A page of `agent`'s inbox, newest first: `{ unread, threadId, since, before, limit, bodies }`. */
  inbox(agent: string, query: InboxQuery = {}, options?: WaitOptions): Promise<InboxPage> {
    const { threadId, ...rest } = query;
    const qs = mailQueryString({ ...rest, thread: threadId });
    return this.#ctx.request("GET", `/v1/mail/inbox/${enc(agent)}${qs ? `?${qs}` : ""}`, undefined, options) as Promise<InboxPage>;
  }

  /** Message `id` as `agent` (a recipient, or its sender) reads it. */
  read(agent: string, id: number, options?: WaitOptions): Promise<MailMessage> {
    return this.#ctx.request("GET", `/v1/mail/inbox/${enc(agent)}/${id}`, undefined, options) as Promise<MailMessage>;
  }

  /** Mark message `id` read in `agent`'s inbox. */
  markRead(agent: string, id: number, options?: WaitOptions): Promise<MailState> {
    return this.#ctx.request("POST", `/v1/mail/inbox/${enc(agent)}/${id}/read`, undefined, options) as Promise<MailState>;
  }

  /** Acknowledge message `id` for `agent` (also marks it read). */
  ack(agent: string, id: number, options?: WaitOptions): Promise<MailState> {
    return this.#ctx.request("POST", `/v1/mail/inbox/${enc(agent)}/${id}/ack`, undefined, options) as Promise<MailState>;
  }

  /**
   * Full-text search (FTS5 syntax) over the mail this credential may read, best match first, with
   * highlighted snippets. A query FTS5 cannot parse is `invalid_query`.
   *
   * @example
   * const { hits } = await bus.mail.search({ q: "deploy AND failed", from: "ci" });
   */
  search(query: SearchQuery | string, options?: WaitOptions): Promise<SearchPage> {
    const { threadId, ...rest } = typeof query === "string" ? { q: query } : query;
    return this.#ctx.request("GET", `/v1/mail/search?${mailQueryString({ ...rest, thread: threadId })}`, undefined, options) as Promise<SearchPage>;
  }

  /** A thread in order, with who has read and acknowledged what. */
  thread(threadId: string, query: ThreadQuery = {}, options?: WaitOptions): Promise<ThreadPage> {
    const qs = mailQueryString(query);
    return this.#ctx.request("GET", `/v1/mail/threads/${enc(threadId)}${qs ? `?${qs}` : ""}`, undefined, options) as Promise<ThreadPage>;
  }

  /**
   * New mail delivered to `agent`, as it arrives: a subscription to its inbox topic, which
   * reconnects and resumes by itself. `from: 0` replays every copy kept; a stored offset + 1
   * resumes after a restart. Needs `subscribe` on the inbox topic, as reading the inbox does.
   *
   * @example
   * for await (const { offset, data } of await bus.mail.watch("coder")) console.log(offset, data.message.subject);
   */
  watch(agent: string, options: MailWatchOptions = {}): Subscription<MailDelivery> & AsyncIterable<Message<MailDelivery>> {
    return this.#ctx.subscribe(inboxTopic(agent), options as SubscribeOptions) as Subscription<MailDelivery>;
  }
}
