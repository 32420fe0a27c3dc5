/**
 * Consumer group tools, with the HTTP pull member's semantics (docs/groups.md): `consume` fetches
 * jobs as `POST .../groups/{group}/fetch`, `ack` settles them as `POST .../groups/{group}/settle`,
 * through the routes' own functions (workers/routes/groups.ts).
 */
import { z } from "zod";
import { fetchRequestSchema, groupNameSchema, settleRequestSchema } from "../../../protocol/group-schemas.ts";
import { groupCall, settleJobs } from "../../routes/groups.ts";
import { defineTool, topicName } from "../tool.ts";

export const consume = defineTool({
  name: "consume",
  title: "Take jobs from a consumer group",
  description:
    "Fetch up to `max` jobs (messages) from a consumer group of a topic as member `member`, waiting up to `waitMs` for the first. " +
    "Each job is held by this member until it is settled with the `ack` tool or its ack wait runs out (then it is delivered again). " +
    "Answers {jobs: [{offset, delivery, data|bytes, ...}], count}. The first fetch that names a group creates it, with the settings in " +
    "`create` or the defaults (start at latest: only messages published after it); settings differing from an existing group's are a conflict. " +
    "Needs the consume scope on the topic.",
  input: z.object({ topic: topicName, group: groupNameSchema, ...fetchRequestSchema.shape }).strict(),
  scope: { action: "consume", topic: (input) => input.topic },
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(c, { topic: _topic, group, ...request }, topic) {
    const reply = await groupCall(c, topic!, { op: "fetch", group, request });
    return { jobs: JSON.parse(reply.jobsJson), count: reply.count };
  },
});

export const ack = defineTool({
  name: "ack",
  title: "Settle jobs of a consumer group",
  description:
    "Settle jobs this member holds, named by {offset, delivery} as `consume` answered them: `ack` (default: done), `nack` (failed: " +
    "deliver again after `delayMs` or the group's backoff), `progress` (still working: the ack wait starts again), `term` (never again: " +
    "dead letter), `release` (not started: back to the group). All jobs are settled or none: not_held names a job this member does not " +
    "hold at that delivery. Answers {settled}. Needs the consume scope on the topic.",
  input: z.object({ topic: topicName, group: groupNameSchema, ...settleRequestSchema.shape, op: settleRequestSchema.shape.op.default("ack") }).strict(),
  scope: { action: "consume", topic: (input) => input.topic },
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  run: (c, { topic: _topic, group, ...request }, topic) => settleJobs(c, topic!, group, request),
});

export const groupTools = [consume, ack];
