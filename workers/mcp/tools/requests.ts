/** The `request` tool: request/reply as `POST /v1/topics/{topic}/request` (workers/routes/requests.ts). */
import { z } from "zod";
import { DEFAULT_REQUEST_TIMEOUT_MS, MAX_REQUEST_TIMEOUT_MS } from "../../../protocol/requests.ts";
import { requestReply } from "../../routes/requests.ts";
import { defineTool, topicName } from "../tool.ts";

export const request = defineTool({
  name: "request",
  title: "Send a request and wait for the reply",
  description:
    "Ask the responders that serve a topic and wait for one reply: answers {data} with the reply's data. " +
    "Errors: no_responders (nobody serves the topic; nothing was sent), timeout (no reply within timeoutMs), responder_gone, " +
    "remote_error (the responder's handler failed; remoteCode is its code). With `durable`, the request is stored in the topic and a " +
    `durable responder's group hands it out. Wait at most ${MAX_REQUEST_TIMEOUT_MS} ms (default ${DEFAULT_REQUEST_TIMEOUT_MS}); ` +
    "keep it below your MCP client's own request timeout. Needs the publish scope on the topic.",
  input: z
    .object({
      topic: topicName,
      data: z.unknown().describe("The request: any JSON value"),
      timeoutMs: z.number().int().min(1).max(MAX_REQUEST_TIMEOUT_MS).optional().describe("How long to wait for the reply, in ms"),
      durable: z.boolean().optional().describe("Store the request, so a durable responder answers it even if it starts later"),
    })
    .strict(),
  scope: { action: "publish", topic: (input) => input.topic },
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  async run(c, { topic: _topic, ...body }, topic) {
    return { data: JSON.parse(await requestReply(c, topic!, body)) };
  },
});

export const requestTools = [request];
