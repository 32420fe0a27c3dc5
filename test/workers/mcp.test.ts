/**
 * /mcp inside workerd (docs/mcp.md): the transport as the gateway serves it — JSON answers and no
 * session, 401 before any MCP message is read, 405 for the GET stream and DELETE — and what a
 * tool call does to storage: a publish is read back through the HTTP route, and arguments of the
 * wrong type are refused with `invalid_field` while nothing is stored. The official MCP client
 * drives the same endpoint from Node in test/node/mcp.test.ts.
 */
import { describe, expect, it } from "vitest";
import { anonymousFetch, freshTopic, gatewayFetch, issueKey } from "./helpers.ts";

const PROTOCOL = "2025-06-18";
let nextId = 1;

async function rpc(method: string, params: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
  return gatewayFetch("/mcp", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", "MCP-Protocol-Version": PROTOCOL, ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
  });
}

/** A `tools/call` answer's result. */
async function callTool(name: string, args: unknown, headers: Record<string, string> = {}) {
  const res = await rpc("tools/call", { name, arguments: args }, headers);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { result: { isError?: boolean; structuredContent: Record<string, unknown>; content: { type: string; text: string }[] } };
  return body.result;
}

describe("/mcp transport", () => {
  it("answers initialize with JSON and no session id", async () => {
    const res = await rpc("initialize", { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "workerd-test", version: "0" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("mcp-session-id")).toBeNull();
    const body = (await res.json()) as { result: { serverInfo: { name: string }; capabilities: Record<string, unknown> } };
    expect(body.result.serverInfo.name).toBe("dovetail");
    expect(body.result.capabilities).toHaveProperty("tools");
    expect(body.result.capabilities).toHaveProperty("resources");
  });

  it("refuses a request without a credential, or with a bad one, with 401 and the error body", async () => {
    const init = {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
    };
    const none = await anonymousFetch("/mcp", init);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: "unauthorized" } });
    const bad = await anonymousFetch("/mcp", { ...init, headers: { ...init.headers, Authorization: "Bearer dvt_not_a_real_key" } });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toMatchObject({ error: { code: "unauthorized" } });
  });

  it("answers a browser's preflight without a credential, allowing MCP's headers", async () => {
    const res = await anonymousFetch("/mcp", {
      method: "OPTIONS",
      headers: {
        Origin: "https://inspector.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, mcp-protocol-version",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("mcp-protocol-version");
  });

  it("refuses a JSON-RPC batch and a body that is not JSON, running nothing", async () => {
    const topic = freshTopic("mcp.w");
    const call = (id: number) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "publish", arguments: { topic, data: id } } });
    const headers = { "Content-Type": "application/json", Accept: "application/json, text/event-stream", "MCP-Protocol-Version": PROTOCOL };
    const batch = await gatewayFetch("/mcp", { method: "POST", headers, body: JSON.stringify([call(1), call(2)]) });
    expect(batch.status).toBe(400);
    expect(await batch.json()).toMatchObject({ error: { code: "invalid_field", message: expect.stringMatching(/batches are not accepted/) } });
    const garbled = await gatewayFetch("/mcp", { method: "POST", headers, body: '{"jsonrpc":"2.0",' });
    expect(garbled.status).toBe(400);
    expect(await garbled.json()).toMatchObject({ error: { code: "bad_frame" } });
    const info = await gatewayFetch(`/v1/topics/${encodeURIComponent(topic)}`);
    expect(await info.json()).toMatchObject({ head: 0, messages: 0 });
  });

  it("refuses GET and DELETE with 405 method_not_allowed", async () => {
    for (const method of ["GET", "DELETE"]) {
      const res = await gatewayFetch("/mcp", { method, headers: { Accept: "text/event-stream" } });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
      expect(await res.json()).toMatchObject({ error: { code: "method_not_allowed" } });
    }
  });
});

describe("/mcp tools in workerd", () => {
  it("publish stores what the HTTP read route then returns", async () => {
    const topic = freshTopic("mcp.w");
    const result = await callTool("publish", { topic, data: { hello: "mcp" }, key: "k1" });
    expect(result.isError).toBeUndefined();
    expect(result.structuredContent).toMatchObject({ offset: 0, count: 1 });
    const read = await gatewayFetch(`/v1/topics/${encodeURIComponent(topic)}/messages`);
    expect(await read.json()).toMatchObject({ messages: [{ offset: 0, data: { hello: "mcp" }, key: "k1" }], head: 1 });
  });

  it("refuses arguments of the wrong type with invalid_field and stores nothing", async () => {
    const topic = freshTopic("mcp.w");
    for (const args of [
      { topic, data: 1, key: 42 },
      { topic: 7, data: 1 },
      { topic, messages: "not a list" },
      { topic, data: 1, extra: true },
    ]) {
      const result = await callTool("publish", args);
      expect(result.isError).toBe(true);
      expect(result.structuredContent).toMatchObject({ error: { code: "invalid_field" } });
      expect(JSON.parse(result.content[0]!.text)).toEqual(result.structuredContent);
    }
    const info = await gatewayFetch(`/v1/topics/${encodeURIComponent(topic)}`);
    expect(await info.json()).toMatchObject({ head: 0, messages: 0 });
  });

  it("refuses a key without the scope with forbidden and stores nothing", async () => {
    const topic = freshTopic("mcp.w");
    const { key } = await issueKey("default", [`subscribe:${topic}`]);
    const result = await callTool("publish", { topic, data: 1 }, { Authorization: `Bearer ${key}` });
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toMatchObject({ error: { code: "forbidden", message: `this credential may not publish on ${topic}` } });
    const read = await callTool("read_topic", { topic }, { Authorization: `Bearer ${key}` });
    expect(read.structuredContent).toMatchObject({ messages: [], head: 0 });
  });
});
