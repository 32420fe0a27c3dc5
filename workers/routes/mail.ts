/**
 * /v1/mail: agent mail (docs/mail.md). Each route reads the request (the body size-capped, query
 * strings decoded), declares the permission its path names, and makes one RPC to the tenant's
 * Mail object (objects/mail.ts), which checks the input, the permission and the per-agent rate
 * itself: the same methods serve the MCP tools.
 *
 * Permissions are scopes on each agent's inbox topic (`inboxTopic`, protocol/mail.ts):
 * `subscribe` on `_mail.<agent>` reads that agent's mail, `publish` on it sends as that agent.
 * Sending names its agent in the body (`from`), threads and search in no path: the object checks
 * those, and answers only what the caller may read.
 */
import { Hono, type Context } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { INBOX_PARAMS, queryFromParams, SEARCH_PARAMS, THREAD_PARAMS } from "../../protocol/mail-schemas.ts";
import { inboxTopic, mailObjectName, MAX_MAIL_REQUEST_BYTES, type InboxQuery, type SearchQuery, type ThreadQuery } from "../../protocol/mail.ts";
import { agentIdProblem } from "../../protocol/agents.ts";
import type { MailCaller } from "../../objects/mail.ts";
import { unwrap } from "../../objects/rpc-result.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { permit, type TopicOf } from "../middleware/permissions.ts";
import { jsonBody } from "../request-body.ts";

/** The tenant's Mail object (the MCP mail tools use it too: workers/mcp/tools/mail.ts). */
export function mail(c: Context<GatewayEnv>) {
  return c.env.MAIL.get(c.env.MAIL.idFromName(mailObjectName(c.get("tenant"))));
}

/** Who calls, as the Mail object checks it. */
export function caller(c: Context<GatewayEnv>): MailCaller {
  const { id, scopes } = c.get("credential");
  return { id, scopes };
}

function agentOf(c: Context<GatewayEnv>): string {
  const agent = c.req.param("agent");
  const problem = agentIdProblem(agent);
  if (problem) throw new DovetailError("invalid_field", `agent: ${problem}`);
  return agent as string;
}

/** The `:agent` path parameter's inbox topic: what permit() checks. */
const inboxOf: TopicOf = (c) => inboxTopic(agentOf(c));

function mailId(c: Context<GatewayEnv>): number {
  const raw = c.req.param("id") ?? "";
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw new DovetailError("invalid_field", "id: a message id is a positive integer");
  return Number(raw);
}

function params(c: Context<GatewayEnv>, names: readonly string[]): Record<string, unknown> {
  return queryFromParams(new URL(c.req.url).searchParams, names);
}

export function mailRoutes(): Hono<GatewayEnv> {
  const routes = new Hono<GatewayEnv>();

  /** Send: a `SendMail` body; the object checks `publish` on the sender's inbox topic. */
  routes.post("/messages", async (c) => {
    const body = await jsonBody(c, MAX_MAIL_REQUEST_BYTES);
    return c.json(unwrap(await mail(c).send(caller(c), body)), 201);
  });

  /** An inbox page, newest first: `?unread=true&thread=&since=&before=&limit=&bodies=true`. */
  routes.get("/inbox/:agent", permit("subscribe", inboxOf), async (c) => {
    return c.json(unwrap(await mail(c).inbox(caller(c), agentOf(c), params(c, INBOX_PARAMS) as InboxQuery)));
  });

  routes.get("/inbox/:agent/:id", permit("subscribe", inboxOf), async (c) => {
    return c.json(unwrap(await mail(c).read(caller(c), agentOf(c), mailId(c))));
  });

  routes.post("/inbox/:agent/:id/read", permit("subscribe", inboxOf), async (c) => {
    return c.json(unwrap(await mail(c).markRead(caller(c), agentOf(c), mailId(c))));
  });

  routes.post("/inbox/:agent/:id/ack", permit("subscribe", inboxOf), async (c) => {
    return c.json(unwrap(await mail(c).ack(caller(c), agentOf(c), mailId(c))));
  });

  /** A thread in order with read/ack state: `?after=&limit=`; only the messages the caller may read. */
  routes.get("/threads/:thread", async (c) => {
    return c.json(unwrap(await mail(c).thread(caller(c), c.req.param("thread"), params(c, THREAD_PARAMS) as ThreadQuery)));
  });

  /** Full-text search: `?q=&from=&to=&thread=&since=&until=&offset=&limit=`. */
  routes.get("/search", async (c) => {
    return c.json(unwrap(await mail(c).search(caller(c), params(c, SEARCH_PARAMS) as unknown as SearchQuery)));
  });

  const notAllowed = (c: Context<GatewayEnv>) => {
    throw new DovetailError("method_not_allowed", `${c.req.method} is not allowed on ${new URL(c.req.url).pathname}`);
  };
  for (const path of ["/messages", "/inbox/:agent", "/inbox/:agent/:id", "/inbox/:agent/:id/read", "/inbox/:agent/:id/ack", "/threads/:thread", "/search"]) {
    routes.all(path, notAllowed);
  }
  return routes;
}
