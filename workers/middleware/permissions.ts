/**
 * permit(): each route declares the action it needs on the topic it names, and this one
 * middleware checks the declaration with the one scope matcher (protocol/scopes.ts). There is
 * no second router: the route's own path parameters say which topic, and Hono runs the
 * declaration for every method the route answers. HEAD is answered by GET routes, so it is
 * checked as the GET it mirrors (issue 18: a path-regex router keyed on `method === "GET"` let
 * HEAD through unchecked).
 *
 * @example
 * topics.post("/:topic/messages", permit("publish"), handler);
 * topics.get("/:topic", permit(["subscribe", "publish", "admin"]), handler); // any one of them
 */
import type { Context, MiddlewareHandler } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { topicNameProblem } from "../../protocol/topic-name.ts";
import { allows, type ScopeAction } from "../../protocol/scopes.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { countAuthFailure } from "../metrics/gateway-counts.ts";

/** Which topic a request acts on; throws `invalid_topic` for a name that breaks the rules. */
export type TopicOf = (c: Context<GatewayEnv>) => string;

/** The `:topic` path parameter (Hono decodes `%2F`), checked against the naming rules. */
export const topicParam: TopicOf = (c) => checkedTopic(c.req.param("topic"));

/** A topic name from a request, or the `invalid_topic` refusal. */
export function checkedTopic(topic: string | undefined): string {
  const problem = topicNameProblem(topic);
  if (problem) throw new DovetailError("invalid_topic", problem);
  return topic as string;
}

/** May this request's credential do `action` on `topic`? (One of `action` when it is a list.) */
export function may(c: Context<GatewayEnv>, action: ScopeAction | readonly ScopeAction[], topic?: string): boolean {
  const { scopes } = c.get("credential");
  const actions = typeof action === "string" ? [action] : action;
  return actions.some((a) => allows(scopes, a, topic));
}

function describe(action: ScopeAction | readonly ScopeAction[], topic: string | undefined): string {
  const actions = typeof action === "string" ? action : action.join(" or ");
  return topic === undefined ? `${actions} (it needs the scope ${actions}:>)` : `${actions} on ${topic}`;
}

/**
 * Refuse the request with `forbidden` unless its credential may do `action` (any of a list) on
 * the route's topic, taken by `topicOf` (default: the `:topic` parameter). `topicOf: null` checks
 * an action that names no topic (the admin API). Sets `c.var.topic` for the handler.
 */
export function permit(action: ScopeAction | readonly ScopeAction[], topicOf: TopicOf | null = topicParam): MiddlewareHandler<GatewayEnv> {
  return async function permit(c, next) {
    const topic = topicOf ? topicOf(c) : undefined;
    requirePermission(c, action, topic);
    if (topic !== undefined) c.set("topic", topic);
    await next();
  };
}

/**
 * The check permit() makes, for callers that learn the topic from a body rather than the path
 * (the MCP tools, workers/mcp/): `forbidden` unless the credential may do `action` (any of a
 * list) on `topic` (undefined: on every topic).
 */
export function requirePermission(c: Context<GatewayEnv>, action: ScopeAction | readonly ScopeAction[], topic: string | undefined): void {
  if (!may(c, action, topic)) {
    countAuthFailure(c, "forbidden", c.get("tenant")); // amb_auth_failures_total{reason="forbidden"}
    throw new DovetailError("forbidden", `this credential may not ${describe(action, topic)}`);
  }
}
