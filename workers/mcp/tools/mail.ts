/**
 * Agent mail tools (docs/mail.md): `send_message`, `fetch_inbox`, `read_message`, `mark_read`,
 * `acknowledge`, `search_messages`, `get_thread`. Each calls the tenant's Mail object as the
 * `/v1/mail` routes do (workers/routes/mail.ts), with the same inputs (the protocol's schemas) and
 * the same permissions: scopes on each agent's inbox topic `_mail.<agent>` (publish on the
 * sender's to send as it, subscribe on an agent's to read its mail); threads and search answer
 * only what the caller may read.
 */
import { z } from "zod";
import {
  agentIdSchema,
  inboxQuerySchema,
  mailIdSchema,
  searchQuerySchema,
  sendMailSchema,
  threadIdSchema,
  threadQuerySchema,
} from "../../../protocol/mail-schemas.ts";
import { inboxTopic } from "../../../protocol/mail.ts";
import { unwrap } from "../../../objects/rpc-result.ts";
import { caller, mail } from "../../routes/mail.ts";
import { defineTool } from "../tool.ts";

const agent = agentIdSchema.describe("The agent whose inbox this is (a registered agent id)");
const inboxScope = { action: "subscribe" as const, topic: (input: { agent: string }) => inboxTopic(input.agent) };

export const sendMessageTool = defineTool({
  name: "send_message",
  title: "Send mail",
  description:
    "Send a message as agent `from` to registered agents (`to`, `cc`, `bcc`), with a `subject`, a Markdown `bodyMd`, optional `threadId` " +
    "(a reply joins that thread; without it a new thread starts), `importance` (low, normal, high, urgent), `ackRequired` and structured `data`. " +
    "Stored once, durably, in every recipient's inbox; answers {id, threadId, createdAt, recipients}. Unknown recipients are refused " +
    "(unknown_recipient) and nothing is stored. Needs the publish scope on the sender's inbox topic _mail.<from>.",
  input: sendMailSchema,
  scope: { action: "publish", topic: (input) => inboxTopic(input.from) },
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  run: async (c, input) => unwrap(await mail(c).send(caller(c), input)),
});

export const fetchInboxTool = defineTool({
  name: "fetch_inbox",
  title: "Fetch an inbox",
  description:
    "A page of an agent's inbox, newest first: `unread` only, one `threadId`, `since` a time (ms since the epoch), `before` a message id " +
    "(the previous page's `next`), `bodies` to include each body. Answers {messages, next}. Needs the subscribe scope on _mail.<agent>.",
  input: inboxQuerySchema.extend({ agent }).strict(),
  scope: inboxScope,
  hints: { readOnlyHint: true, openWorldHint: false },
  run: async (c, { agent: who, ...query }) => unwrap(await mail(c).inbox(caller(c), who, query)),
});

const oneMessage = z.object({ agent, id: mailIdSchema.describe("The message id (from fetch_inbox or send_message)") }).strict();

export const readMessageTool = defineTool({
  name: "read_message",
  title: "Read one message",
  description: "One message of an agent's inbox, with its body and this agent's read and ack state. Needs the subscribe scope on _mail.<agent>.",
  input: oneMessage,
  scope: inboxScope,
  hints: { readOnlyHint: true, openWorldHint: false },
  run: async (c, { agent: who, id }) => unwrap(await mail(c).read(caller(c), who, id)),
});

export const markReadTool = defineTool({
  name: "mark_read",
  title: "Mark mail read",
  description: "Mark a message of an agent's inbox read (idempotent). Answers the agent's state of it. Needs the subscribe scope on _mail.<agent>.",
  input: oneMessage,
  scope: inboxScope,
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  run: async (c, { agent: who, id }) => unwrap(await mail(c).markRead(caller(c), who, id)),
});

export const acknowledgeTool = defineTool({
  name: "acknowledge",
  title: "Acknowledge mail",
  description:
    "Acknowledge a message that asked for it (`ackRequired`) in an agent's inbox (idempotent; it also marks it read). " +
    "Answers the agent's state of it. Needs the subscribe scope on _mail.<agent>.",
  input: oneMessage,
  scope: inboxScope,
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  run: async (c, { agent: who, id }) => unwrap(await mail(c).ack(caller(c), who, id)),
});

export const searchMessagesTool = defineTool({
  name: "search_messages",
  title: "Search mail",
  description:
    'Full-text search over the tenant\'s mail (subject and body, SQLite FTS5 syntax: words, "a phrase", prefix*, AND/OR/NOT, subject:word), ' +
    "best matches first, each with a snippet whose matches are marked; filters `from`, `to`, `threadId`, `since`, `until`; paging with `offset`. " +
    "Only mail the credential may read is searched. A query that is not valid FTS5 is refused with invalid_query.",
  input: searchQuerySchema,
  scope: "checked-by-object",
  hints: { readOnlyHint: true, openWorldHint: false },
  run: async (c, query) => unwrap(await mail(c).search(caller(c), query)),
});

export const getThreadTool = defineTool({
  name: "get_thread",
  title: "Get a thread",
  description:
    "The messages of a thread in order, with who has read and acknowledged each; only the messages the credential may read. " +
    "Page with `after` (the previous page's `next`).",
  input: threadQuerySchema.extend({ threadId: threadIdSchema.describe("The thread id (from send_message or a message)") }).strict(),
  scope: "checked-by-object",
  hints: { readOnlyHint: true, openWorldHint: false },
  run: async (c, { threadId, ...query }) => unwrap(await mail(c).thread(caller(c), threadId, query)),
});

export const mailTools = [sendMessageTool, fetchInboxTool, readMessageTool, markReadTool, acknowledgeTool, searchMessagesTool, getThreadTool];
