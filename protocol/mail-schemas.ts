/**
 * The zod schemas of agent mail, as the server checks what clients send: the send body and the
 * inbox, thread and search queries. The Mail object parses every call with them (so an HTTP route
 * and an MCP tool get the same checks), and the gateway turns query strings into these shapes with
 * {@link queryFromParams}. Kept apart from mail.ts, which clients import (decision 025).
 */
import { z } from "zod";
import { agentIdSchema } from "./agent-schemas.ts";
import { DovetailError } from "./errors.ts";
import { MAX_DATA_DEPTH, nestsDeeperThan } from "./frames.ts";
import {
  MAIL_IMPORTANCE,
  MAX_MAIL_BODY_BYTES,
  MAX_MAIL_DATA_BYTES,
  MAX_MAIL_PAGE,
  MAX_MAIL_QUERY_LENGTH,
  MAX_MAIL_RECIPIENTS,
  MAX_MAIL_SUBJECT_LENGTH,
  THREAD_ID,
  type InboxQuery,
  type SearchQuery,
  type SendMail,
  type ThreadQuery,
} from "./mail.ts";

const threadIdSchema = z.string().regex(THREAD_ID, "a thread id is 1–128 characters of A-Z a-z 0-9 _ . : -");
const recipientList = z.array(agentIdSchema).max(MAX_MAIL_RECIPIENTS);
const time = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const messageId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const limit = z.number().int().min(1).max(MAX_MAIL_PAGE);

export const sendMailSchema = z
  .object({
    from: agentIdSchema,
    to: recipientList,
    cc: recipientList.optional(),
    bcc: recipientList.optional(),
    subject: z.string().min(1).max(MAX_MAIL_SUBJECT_LENGTH),
    bodyMd: z.string().optional(),
    threadId: threadIdSchema.optional(),
    importance: z.enum(MAIL_IMPORTANCE).optional(),
    ackRequired: z.boolean().optional(),
    data: z.unknown().optional(),
  })
  .strict();

export const inboxQuerySchema = z
  .object({
    unread: z.boolean().optional(),
    threadId: threadIdSchema.optional(),
    since: time.optional(),
    before: messageId.optional(),
    limit: limit.optional(),
    bodies: z.boolean().optional(),
  })
  .strict();

export const threadQuerySchema = z.object({ after: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(), limit: limit.optional() }).strict();

export const searchQuerySchema = z
  .object({
    q: z.string().trim().min(1, "a search needs a query").max(MAX_MAIL_QUERY_LENGTH),
    from: agentIdSchema.optional(),
    to: agentIdSchema.optional(),
    threadId: threadIdSchema.optional(),
    since: time.optional(),
    until: time.optional(),
    offset: z.number().int().min(0).max(10_000).optional(),
    limit: limit.optional(),
  })
  .strict();

export { agentIdSchema, messageId as mailIdSchema, threadIdSchema };

/** The `invalid_field` error for the first issue zod found. */
function invalidField(error: z.ZodError): DovetailError {
  const issue = error.issues[0];
  const path = issue?.path.join(".");
  return new DovetailError("invalid_field", path ? `${path}: ${issue?.message}` : (issue?.message ?? "invalid input"));
}

/** Parse `value` with `schema`, or throw `invalid_field` naming the field. */
export function parseMailInput<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw invalidField(result.error);
  return result.data;
}

/** What a send looks like once checked: recipients without duplicates, sizes within limits. */
export interface CheckedSend {
  mail: SendMail;
  /** Every recipient once, with the first way it was named (to before cc before bcc). */
  recipients: { agent: string; kind: "to" | "cc" | "bcc" }[];
  dataJson: string | null;
}

/**
 * Check a send: the schema, then what it cannot say: at least one recipient, at most
 * {@link MAX_MAIL_RECIPIENTS} in all, the body and data sizes (`message_too_large`), data depth.
 */
export function checkSend(value: unknown): CheckedSend {
  const mail = parseMailInput(sendMailSchema, value) as SendMail;
  const recipients: CheckedSend["recipients"] = [];
  const seen = new Set<string>();
  for (const kind of ["to", "cc", "bcc"] as const) {
    for (const agent of mail[kind] ?? []) {
      if (seen.has(agent)) continue;
      seen.add(agent);
      recipients.push({ agent, kind });
    }
  }
  if (recipients.length === 0) throw new DovetailError("invalid_field", "to: a message needs at least one recipient (to, cc or bcc)");
  if (recipients.length > MAX_MAIL_RECIPIENTS) throw new DovetailError("invalid_field", `to: at most ${MAX_MAIL_RECIPIENTS} recipients in all`);
  const bodyBytes = new TextEncoder().encode(mail.bodyMd ?? "").byteLength;
  if (bodyBytes > MAX_MAIL_BODY_BYTES) throw new DovetailError("message_too_large", `bodyMd is ${bodyBytes} bytes; the limit is ${MAX_MAIL_BODY_BYTES}`);
  let dataJson: string | null = null;
  if (mail.data !== undefined) {
    if (nestsDeeperThan(mail.data, MAX_DATA_DEPTH)) throw new DovetailError("too_deep", `data nests deeper than ${MAX_DATA_DEPTH} levels`);
    dataJson = JSON.stringify(mail.data);
    const dataBytes = new TextEncoder().encode(dataJson).byteLength;
    if (dataBytes > MAX_MAIL_DATA_BYTES)
      throw new DovetailError("message_too_large", `data is ${dataBytes} bytes as JSON; the limit is ${MAX_MAIL_DATA_BYTES}`);
  }
  return { mail, recipients, dataJson };
}

const BOOLEAN_PARAMS = new Set(["unread", "bodies"]);
const NUMBER_PARAMS = new Set(["since", "until", "before", "after", "offset", "limit"]);
/** Query parameter names as the URL spells them → field names. */
const PARAM_FIELDS: Record<string, string> = { thread: "threadId" };

/**
 * A query string as the typed query of `names` (URL spelling: `thread` for `threadId`): numbers
 * and booleans decoded, an unknown or repeated parameter refused with `invalid_field`. The object
 * then checks ranges with the query's schema.
 */
export function queryFromParams(params: URLSearchParams, names: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of params) {
    if (name === "token") continue;
    if (!names.includes(name)) {
      throw new DovetailError("invalid_field", `unknown query parameter ${JSON.stringify(name.slice(0, 64))} (${names.join(", ")})`);
    }
    const field = PARAM_FIELDS[name] ?? name;
    if (field in out) throw new DovetailError("invalid_field", `${name}: given more than once`);
    if (BOOLEAN_PARAMS.has(name)) {
      if (value !== "true" && value !== "false") throw new DovetailError("invalid_field", `${name}: expected true or false`);
      out[field] = value === "true";
    } else if (NUMBER_PARAMS.has(name)) {
      if (!/^\d{1,16}$/.test(value)) throw new DovetailError("invalid_field", `${name}: expected a non-negative integer`);
      out[field] = Number(value);
    } else out[field] = value;
  }
  return out;
}

export const INBOX_PARAMS = ["unread", "thread", "since", "before", "limit", "bodies"] as const;
export const THREAD_PARAMS = ["after", "limit"] as const;
export const SEARCH_PARAMS = ["q", "from", "to", "thread", "since", "until", "offset", "limit"] as const;

export type { InboxQuery, SearchQuery, ThreadQuery };
