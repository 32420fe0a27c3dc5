/**
 * The MCP endpoint driven by the official MCP client (`Client` + `StreamableHTTPClientTransport`
 * from @modelcontextprotocol/sdk) against the real bus process with auth on (docs/mcp.md): the
 * tool list with its schemas, every tool called once for real (a responder of the SDK answers
 * `request`), the topic resource, a narrow key refused with `forbidden` where its HTTP route
 * refuses it, arguments of the wrong type refused with `invalid_field` with nothing stored, an
 * unknown tool, and a missing or bad token answered 401 before any MCP message.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../support/bus-process.ts";
import { freshTopic, sdkClients } from "../support/sdk-clients.ts";

const TOOL_NAMES = [
  "ack",
  "acknowledge",
  "consume",
  "fetch_inbox",
  "get_thread",
  "list_agents",
  "mark_read",
  "publish",
  "read_message",
  "read_topic",
  "register_agent",
  "request",
  "search_messages",
  "send_message",
];

let bus: BusProcess;
const clients = sdkClients(() => bus);
const mcpClients: Client[] = [];

/** An MCP client connected to the bus with `token` (the development token by default). */
async function mcp(token: string | null = bus.token!): Promise<Client> {
  const client = new Client({ name: "dovetail-test", version: "0.0.0" });
  const headers: Record<string, string> = token === null ? {} : { Authorization: `Bearer ${token}` };
  await client.connect(new StreamableHTTPClientTransport(new URL(`${bus.url}/mcp`), { requestInit: { headers } }));
  mcpClients.push(client);
  return client;
}

/** Call a tool; the result, typed. */
async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult & { structuredContent: Record<string, unknown> }> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult & { structuredContent: Record<string, unknown> };
}

/** The error code a tool result carries (it must be an error). */
function errorCode(result: CallToolResult): string {
  expect(result.isError).toBe(true);
  const body = JSON.parse((result.content[0] as { text: string }).text) as { error: { code: string } };
  expect(result.structuredContent).toEqual(body);
  return body.error.code;
}

async function createKey(scopes: string[]): Promise<string> {
  const res = await fetch(`${bus.url}/v1/admin/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${bus.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "mcp-test", scopes }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { key: string }).key;
}

beforeAll(async () => {
  bus = await startBus({ auth: true });
}, 120_000);

afterAll(async () => {
  await Promise.all(mcpClients.map((c) => c.close().catch(() => undefined)));
  await clients.closeAll();
  await bus?.stop();
});

describe("MCP tools through the official client", () => {
  it("lists every tool with a description and an object input schema", async () => {
    const client = await mcp();
    expect(client.getServerVersion()?.name).toBe("dovetail");
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOL_NAMES);
    for (const tool of tools) {
      expect(tool.description?.length).toBeGreaterThan(40);
      expect(tool.inputSchema.type).toBe("object");
    }
    const publish = tools.find((t) => t.name === "publish")!;
    expect(publish.inputSchema.required).toEqual(["topic"]);
    expect(Object.keys(publish.inputSchema.properties ?? {})).toEqual(expect.arrayContaining(["topic", "data", "key", "headers", "messages"]));
    expect(tools.find((t) => t.name === "read_topic")!.annotations?.readOnlyHint).toBe(true);
  });

  it("register_agent and list_agents: an agent registered over MCP is found by its capability", async () => {
    const client = await mcp();
    const id = freshTopic("mcp-agent");
    const capability = freshTopic("mcp-cap");
    const registered = await call(client, "register_agent", { id, name: "MCP agent", capabilities: [capability], meta: { team: "blue" }, ttlMs: 60_000 });
    expect(registered.isError).toBeUndefined();
    expect(registered.structuredContent).toMatchObject({ id, name: "MCP agent", capabilities: [capability], present: true, via: "http" });
    const found = await call(client, "list_agents", { capability, meta: { team: "blue" } });
    expect(found.structuredContent).toMatchObject({ agents: [{ id, present: true }] });
    expect(errorCode(await call(client, "list_agents", { capability: "no-such-capability-anywhere" }))).toBe("unknown_capability");
    // The HTTP lookup sees the same registry.
    const http = await fetch(`${bus.url}/v1/agents/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${bus.token}` } });
    expect(await http.json()).toMatchObject({ id, meta: { team: "blue" } });
  });

  it("mail: send_message, fetch_inbox, read_message, mark_read, acknowledge, get_thread, search_messages", async () => {
    const client = await mcp();
    const [alice, bob] = [freshTopic("mcp-alice"), freshTopic("mcp-bob")];
    for (const id of [alice, bob]) expect((await call(client, "register_agent", { id, ttlMs: 60_000 })).isError).toBeUndefined();
    const sent = await call(client, "send_message", {
      from: alice,
      to: [bob],
      subject: "Deploy window",
      bodyMd: "The **deploy** starts at noon.",
      ackRequired: true,
      importance: "high",
    });
    expect(sent.isError).toBeUndefined();
    const { id, threadId } = sent.structuredContent as { id: number; threadId: string };
    const inbox = await call(client, "fetch_inbox", { agent: bob, unread: true });
    expect(inbox.structuredContent).toMatchObject({ messages: [{ id, subject: "Deploy window", from: alice }] });
    expect((await call(client, "read_message", { agent: bob, id })).structuredContent).toMatchObject({ id, bodyMd: "The **deploy** starts at noon." });
    expect((await call(client, "mark_read", { agent: bob, id })).isError).toBeUndefined();
    expect((await call(client, "acknowledge", { agent: bob, id })).isError).toBeUndefined();
    expect((await call(client, "fetch_inbox", { agent: bob, unread: true })).structuredContent).toMatchObject({ messages: [] });
    const thread = await call(client, "get_thread", { threadId });
    expect(thread.structuredContent).toMatchObject({ messages: [{ id }] });
    const found = await call(client, "search_messages", { q: "deploy", from: alice });
    expect(found.structuredContent).toMatchObject({ hits: [{ message: { id }, snippets: { subject: "**Deploy** window" } }] });
    expect(errorCode(await call(client, "search_messages", { q: "deploy AND (" }))).toBe("invalid_query");
    expect(errorCode(await call(client, "send_message", { from: alice, to: ["nobody-registered-here"], subject: "x" }))).toBe("unknown_recipient");
    // The HTTP inbox sees the same mail.
    const http = await fetch(`${bus.url}/v1/mail/inbox/${encodeURIComponent(bob)}`, { headers: { Authorization: `Bearer ${bus.token}` } });
    expect(await http.json()).toMatchObject({ messages: [{ id }] });
  });

  it("publish and read_topic: one message, a batch, reading from an offset and the last N", async () => {
    const client = await mcp();
    const topic = freshTopic("mcp.topic");
    expect((await call(client, "publish", { topic, data: { n: 0 }, key: "a", headers: { kind: "first" } })).structuredContent).toMatchObject({
      offset: 0,
      count: 1,
    });
    const batch = await call(client, "publish", { topic, messages: [{ data: { n: 1 } }, { data: { n: 2 } }, { data: { n: 3 } }] });
    expect(batch.structuredContent).toMatchObject({ offset: 1, count: 3 });
    const all = await call(client, "read_topic", { topic });
    expect(all.structuredContent).toMatchObject({ next: 4, head: 4, earliest: 0 });
    const messages = all.structuredContent.messages as { offset: number; data: unknown; key?: string; headers?: Record<string, string> }[];
    expect(messages.map((m) => m.data)).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
    expect(messages[0]).toMatchObject({ offset: 0, key: "a", headers: { kind: "first" } });
    const page = await call(client, "read_topic", { topic, from: 1, limit: 2 });
    expect((page.structuredContent.messages as { offset: number }[]).map((m) => m.offset)).toEqual([1, 2]);
    const last = await call(client, "read_topic", { topic, last: 2 });
    expect((last.structuredContent.messages as { offset: number }[]).map((m) => m.offset)).toEqual([2, 3]);
    expect(errorCode(await call(client, "read_topic", { topic, from: 99 }))).toBe("offset_out_of_range");
  });

  it("request: the reply of an SDK responder, no_responders and remote_error as tool errors with their codes", async () => {
    const client = await mcp();
    const topic = freshTopic("mcp.rr");
    const responder = clients.client();
    await responder.serve<{ a: number; b: number }>(topic, ({ a, b }) => {
      if (a < 0) throw Object.assign(new Error("negative input"), { code: "E_NEGATIVE" });
      return { sum: a + b };
    });
    expect((await call(client, "request", { topic, data: { a: 2, b: 3 }, timeoutMs: 10_000 })).structuredContent).toEqual({ data: { sum: 5 } });
    const failed = await call(client, "request", { topic, data: { a: -1, b: 3 } });
    expect(errorCode(failed)).toBe("remote_error");
    expect(failed.structuredContent).toMatchObject({ error: { message: "negative input", remoteCode: "E_NEGATIVE" } });
    expect(errorCode(await call(client, "request", { topic: freshTopic("mcp.nobody"), data: 1 }))).toBe("no_responders");
  });

  it("consume and ack: jobs fetched from a group created on first use, acked once, not_held after", async () => {
    const client = await mcp();
    const topic = freshTopic("mcp.jobs");
    await call(client, "publish", { topic, messages: [{ data: "job-0" }, { data: "job-1" }] });
    const fetched = await call(client, "consume", { topic, group: "workers", member: "mcp-1", max: 10, create: { start: "earliest" } });
    expect(fetched.structuredContent).toMatchObject({ count: 2 });
    const jobs = fetched.structuredContent.jobs as { offset: number; delivery: number; data: unknown }[];
    expect(jobs.map((j) => j.data)).toEqual(["job-0", "job-1"]);
    const refs = jobs.map(({ offset, delivery }) => ({ offset, delivery }));
    expect((await call(client, "ack", { topic, group: "workers", member: "mcp-1", jobs: refs })).structuredContent).toEqual({ settled: 2 });
    expect(errorCode(await call(client, "ack", { topic, group: "workers", member: "mcp-1", jobs: refs }))).toBe("not_held");
    expect((await call(client, "consume", { topic, group: "workers", member: "mcp-1" })).structuredContent).toMatchObject({ count: 0, jobs: [] });
    // A group first named without settings starts at the latest message, as an HTTP fetch's does.
    expect((await call(client, "consume", { topic, group: "latecomers", member: "mcp-2" })).structuredContent).toMatchObject({ count: 0 });
    expect(errorCode(await call(client, "consume", { topic, group: "workers", member: "mcp-1", create: { maxDeliver: 2 } }))).toBe("conflict");
  });

  it("serves a topic's recent messages as a resource", async () => {
    const client = await mcp();
    const topic = freshTopic("mcp.res");
    await call(client, "publish", { topic, messages: Array.from({ length: 25 }, (_, n) => ({ data: n })) });
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((t) => t.uriTemplate)).toContain("dovetail://topics/{topic}/messages");
    const uri = `dovetail://topics/${encodeURIComponent(topic)}/messages`;
    expect((await client.listResources()).resources.map((r) => r.uri)).toContain(uri);
    const read = await client.readResource({ uri });
    const content = read.contents[0] as { text: string; mimeType: string };
    expect(content.mimeType).toBe("application/json");
    const body = JSON.parse(content.text) as { messages: { data: number }[]; head: number };
    expect(body.head).toBe(25);
    expect(body.messages.map((m) => m.data)).toEqual(Array.from({ length: 20 }, (_, n) => n + 5));
  });
});

describe("MCP refusals", () => {
  it("a narrow key is refused with forbidden wherever its HTTP route refuses it, and nothing is stored", async () => {
    const topic = freshTopic("mcp.narrow");
    const client = await mcp(await createKey([`subscribe:${topic}`]));
    expect((await client.listTools()).tools).toHaveLength(TOOL_NAMES.length);
    const refusals: [string, Record<string, unknown>][] = [
      ["publish", { topic, data: 1 }],
      ["request", { topic, data: 1 }],
      ["consume", { topic, group: "g", member: "m", create: {} }],
      ["ack", { topic, group: "g", member: "m", jobs: [{ offset: 0, delivery: 1 }] }],
      ["register_agent", { id: "narrow-agent" }],
      ["list_agents", {}],
      ["read_topic", { topic: `${topic}.other` }],
      ["send_message", { from: "narrow-agent", to: ["someone"], subject: "hi" }],
      ["fetch_inbox", { agent: "someone" }],
      ["mark_read", { agent: "someone", id: 1 }],
    ];
    for (const [name, args] of refusals) {
      const result = await call(client, name, args);
      expect(errorCode(result), name).toBe("forbidden");
      expect((result.content[0] as { text: string }).text).toMatch(/this credential may not/);
    }
    expect((await call(client, "read_topic", { topic })).structuredContent).toMatchObject({ messages: [], head: 0 });
    await expect(client.readResource({ uri: `dovetail://topics/${encodeURIComponent(`${topic}.other`)}/messages` })).rejects.toThrow(/forbidden/);
  });

  it("arguments of the wrong type are refused with invalid_field naming the field, and nothing is stored", async () => {
    const client = await mcp();
    const topic = freshTopic("mcp.bad");
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["publish", { topic, data: 1, key: 5 }, /key/],
      ["publish", { topic, messages: [] }, /messages/],
      ["publish", { topic, data: 1, messages: [{ data: 2 }] }, /messages/],
      ["publish", { topic, data: 1, priority: "high" }, /priority/],
      ["publish", { topic, data: 1, surprise: true }, /surprise/],
      ["read_topic", { topic, limit: 0 }, /limit/],
      ["read_topic", { topic, from: "start" }, /from/],
      ["request", { topic, data: 1, timeoutMs: "soon" }, /timeoutMs/],
      ["consume", { topic, group: "bad group!", member: "m" }, /group/],
      ["ack", { topic, group: "g", member: "m", jobs: [{ offset: -1, delivery: 1 }] }, /jobs/],
      ["ack", { topic, group: "g", member: "m", jobs: [], op: "ack" }, /jobs/],
      ["register_agent", { id: 12 }, /id/],
      ["list_agents", { present: "yes" }, /present/],
      ["send_message", { from: "a", to: "b", subject: "x" }, /to/],
      ["fetch_inbox", { agent: "a", limit: "ten" }, /limit/],
      ["search_messages", { q: 5 }, /q/],
    ];
    for (const [name, args, field] of cases) {
      const result = await call(client, name, args);
      expect(errorCode(result), `${name} ${JSON.stringify(args)}`).toBe("invalid_field");
      expect((result.content[0] as { text: string }).text).toMatch(field);
    }
    expect(errorCode(await call(client, "publish", { topic: "bad topic name", data: 1 }))).toBe("invalid_topic");
    expect((await call(client, "read_topic", { topic })).structuredContent).toMatchObject({ messages: [], head: 0 });
    const http = await fetch(`${bus.url}/v1/topics/${encodeURIComponent(topic)}`, { headers: { Authorization: `Bearer ${bus.token}` } });
    expect(await http.json()).toMatchObject({ head: 0, messages: 0 });
  });

  it("an unknown tool is a protocol error", async () => {
    const client = await mcp();
    await expect(client.callTool({ name: "no_such_tool", arguments: {} })).rejects.toThrow(/unknown tool/);
  });

  it("a missing or bad token is answered 401 before any MCP message", async () => {
    for (const token of [null, "dvt_not_a_key", "not-even-a-token"]) {
      const error = await mcp(token).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StreamableHTTPError);
      expect((error as StreamableHTTPError).code).toBe(401);
      expect(String((error as Error).message)).toMatch(/unauthorized/);
    }
  });
});
