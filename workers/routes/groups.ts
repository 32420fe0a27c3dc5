/**
 * /v1/topics/{topic}/groups: consumer groups over HTTP (docs/groups.md, docs/protocol.md
 * "Consumer groups over HTTP"). Pull members fetch jobs and settle them here; the admin routes
 * create, inspect, reset and delete groups and replay their dead letters. Bodies are checked
 * here; the topic object does the rest (objects/groups/).
 *
 * Scopes: fetching, settling, claiming, creating and reading groups need `consume` on the topic;
 * deleting, resetting and replaying dead letters need `admin` on it.
 */
import { Hono, type Context } from "hono";
import type { z } from "zod";
import { DovetailError } from "../../protocol/errors.ts";
import {
  claimRequestSchema,
  fetchRequestSchema,
  groupSettingsSchema,
  replayRequestSchema,
  resetRequestSchema,
  settleRequestSchema,
  type SettleRequest,
} from "../../protocol/group-schemas.ts";
import { groupNameProblem, MAX_FETCH_JOBS, type GroupCall, type GroupReplies } from "../../protocol/groups.ts";
import { unwrap } from "../../objects/rpc-result.ts";
import { permit } from "../middleware/permissions.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { invalid, jsonBody } from "../request-body.ts";
import { topicExists } from "../topic-exists.ts";
import { topicStub } from "../topic-stub.ts";

/** Largest group request body (a settle of 10,000 jobs is ~400 KB). */
const MAX_BODY_BYTES = 1024 * 1024;

function groupParam(c: Context<GatewayEnv>): string {
  const group = c.req.param("group");
  const problem = groupNameProblem(group);
  if (problem) throw new DovetailError("invalid_field", `group: ${problem}`);
  return group as string;
}

/** One call to the groups of `topic`; the caller checked the scope. Shared with the MCP tools (workers/mcp/tools/groups.ts). */
export async function groupCall<C extends GroupCall>(c: Context<GatewayEnv>, topic: string, request: C): Promise<GroupReplies[C["op"]]> {
  const stub = topicStub(c.env, c.get("tenant"), topic);
  return unwrap(await stub.groups(topic, request)) as GroupReplies[C["op"]];
}

function call<C extends GroupCall>(c: Context<GatewayEnv>, request: C): Promise<GroupReplies[C["op"]]> {
  return groupCall(c, c.get("topic"), request);
}

/** A settle of the HTTP route and the MCP `ack` tool: only `release` may name no job. */
export function settleJobs(c: Context<GatewayEnv>, topic: string, group: string, request: SettleRequest): Promise<GroupReplies["settle"]> {
  if (request.jobs.length === 0 && request.op !== "release")
    throw new DovetailError("invalid_field", "jobs: name at least one job (only release may name none)");
  return groupCall(c, topic, { op: "settle", group, request });
}

async function body<T>(c: Context<GatewayEnv>, schema: z.ZodType<T>): Promise<T> {
  const raw = await jsonBody(c, MAX_BODY_BYTES);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalid(parsed.error);
  return parsed.data;
}

/** A read of a topic nobody wrote to is answered here, without waking (and creating) the topic. */
async function known(c: Context<GatewayEnv>): Promise<boolean> {
  return topicExists(c.env, c.get("tenant"), c.get("topic"));
}

/** The jobs of a fetch or claim, sent as stored (the object returns them as JSON text). */
function jobsResponse(c: Context<GatewayEnv>, reply: { jobsJson: string; count: number }): Response {
  return c.body(`{"jobs":${reply.jobsJson},"count":${reply.count}}`, 200, { "Content-Type": "application/json" });
}

export function groupRoutes(): Hono<GatewayEnv> {
  const groups = new Hono<GatewayEnv>();

  groups.get("/:topic/groups", permit("consume"), async (c) => {
    if (!(await known(c))) return c.json({ groups: [] });
    return c.json(await call(c, { op: "list" }));
  });

  /** Create a group (201), or confirm one with the same settings (200); other settings are a 409 `conflict`. */
  groups.put("/:topic/groups/:group", permit("consume"), async (c) => {
    const group = groupParam(c);
    // No body (or an empty one) means every default.
    const empty = c.req.header("Content-Length") === "0" || (c.req.header("Content-Length") === undefined && c.req.header("Transfer-Encoding") === undefined);
    const settings = empty ? {} : await body(c, groupSettingsSchema);
    const reply = await call(c, { op: "create", group, settings });
    return c.json(reply.info, reply.created ? 201 : 200);
  });

  groups.get("/:topic/groups/:group", permit("consume"), async (c) => {
    const group = groupParam(c);
    if (!(await known(c))) throw new DovetailError("group_not_found", `no group ${group} on ${c.get("topic")}`);
    return c.json(await call(c, { op: "info", group }));
  });

  groups.delete("/:topic/groups/:group", permit("admin"), async (c) => {
    const group = groupParam(c);
    if (!(await known(c))) throw new DovetailError("group_not_found", `no group ${group} on ${c.get("topic")}`);
    return c.json(await call(c, { op: "delete", group }));
  });

  groups.post("/:topic/groups/:group/reset", permit("admin"), async (c) => {
    const group = groupParam(c);
    const { to } = await body(c, resetRequestSchema);
    return c.json(await call(c, { op: "reset", group, to }));
  });

  /** Pull up to `max` jobs as member `member`, waiting up to `waitMs` for the first. */
  groups.post("/:topic/groups/:group/fetch", permit("consume"), async (c) => {
    const group = groupParam(c);
    const request = await body(c, fetchRequestSchema);
    return jobsResponse(c, await call(c, { op: "fetch", group, request }));
  });

  /** Ack, nack, progress or term jobs the member holds: all of them, or none (`not_held`). */
  groups.post("/:topic/groups/:group/settle", permit("consume"), async (c) => {
    const group = groupParam(c);
    return c.json(await settleJobs(c, c.get("topic"), group, await body(c, settleRequestSchema)));
  });

  /** Take over jobs held longer than `minIdleMs` by other members (like XAUTOCLAIM). */
  groups.post("/:topic/groups/:group/claim", permit("consume"), async (c) => {
    const group = groupParam(c);
    const request = await body(c, claimRequestSchema);
    return jobsResponse(c, await call(c, { op: "claim", group, member: request.member, minIdleMs: request.minIdleMs, max: request.max ?? MAX_FETCH_JOBS }));
  });

  /** Deliver this group's dead letters again, read from its dead-letter topic from `from`. */
  groups.post("/:topic/groups/:group/replay", permit("admin"), async (c) => {
    const group = groupParam(c);
    const request = await body(c, replayRequestSchema);
    return c.json(await call(c, { op: "replay", group, from: request.from, limit: request.limit }));
  });

  return groups;
}
