/**
 * The example Worker agent woken by a webhook (sdk/examples/workers/webhook-agent.ts), inside workerd,
 * against the bus's real webhooks: the Subscription object signs and sends each wake with its own
 * `fetch`, and nothing in workerd can listen on a port, so this test stands in for the network.
 * The Subscription objects run in this test's isolate (which is what lets `runInDurableObject`
 * work), so their `fetch` is the global one: the test routes `https://agent.example/…` to the
 * example's `fetch` handler and `http://bus.test/…` (the JWK Set, the stream reads, the callback)
 * to the gateway. Every byte the agent sees is what the bus sent; every request it makes goes
 * through the real gateway with a real credential.
 */
import { exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import agent, { type WebhookAgentEnv } from "../../sdk/examples/workers/webhook-agent.ts";
import { encodeOffset } from "../../objects/stream-format.ts";
import { freshPath, gatewayFetch, testCredential, until } from "./helpers.ts";

const json = { "Content-Type": "application/json" };

interface View {
  status: string;
  streams: { path: string; acked_offset: string }[];
}

/**
 * Webhooks the bus sent to the agent, as they arrived (body and signature read inside the
 * Subscription object's request: its I/O objects cannot cross to the test's), and the answers.
 */
let delivered: { raw: string; signature: string | null; status: number }[] = [];
let agentEnv: WebhookAgentEnv;
const realFetch = globalThis.fetch;

beforeEach(async () => {
  delivered = [];
  agentEnv = { DOVETAIL_URL: "http://bus.test", DOVETAIL_TOKEN: await testCredential(), SUBSCRIPTION_ID: "", OUTPUT_STREAM: "" };
  globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    const host = new URL(request.url).host;
    if (host === "agent.example") {
      const raw = await request.clone().text();
      const res = await agent.fetch(request, agentEnv);
      delivered.push({ raw, signature: request.headers.get("webhook-signature"), status: res.status });
      return res;
    }
    if (host === "bus.test") return exports.default.fetch(request);
    return realFetch(input, init);
  };
});

afterEach(() => {
  globalThis.fetch = realFetch;
});

describe("example: a Worker agent woken by a webhook", () => {
  it("verifies the wake, processes every pending message, acks through the callback: cursors at the tails, nothing pending", async () => {
    const root = freshPath("wa");
    const id = freshPath("agent");
    const output = `${root}-out/results`;
    agentEnv = { ...agentEnv, SUBSCRIPTION_ID: id, OUTPUT_STREAM: output };
    expect((await gatewayFetch(`/v1/stream/${output}`, { method: "PUT", headers: json, body: "[]" })).status).toBe(201);
    const put = await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, {
      method: "PUT",
      headers: json,
      body: JSON.stringify({ type: "webhook", pattern: `${root}/*`, webhook: { url: "https://agent.example/wake" } }),
    });
    expect(put.status).toBe(201);

    // Streams created after the subscription: linked before their first append, so all pending.
    expect((await gatewayFetch(`/v1/stream/${root}/a`, { method: "PUT", headers: json, body: JSON.stringify([{ n: 0 }, { n: 1 }]) })).status).toBe(201);
    expect((await gatewayFetch(`/v1/stream/${root}/b`, { method: "PUT", headers: json, body: JSON.stringify([{ n: 2 }]) })).status).toBe(201);
    await gatewayFetch(`/v1/stream/${root}/a`, { method: "POST", headers: json, body: JSON.stringify({ n: 3 }) });

    const view = async () => (await (await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`)).json()) as View;
    const final = await until(async () => {
      const v = await view();
      const at = Object.fromEntries(v.streams.map((s) => [s.path, s.acked_offset]));
      return at[`${root}/a`] === encodeOffset(3) && at[`${root}/b`] === encodeOffset(1) && v;
    }, "both cursors at their tails");
    expect(final.status).toBe("active");
    expect(delivered.length).toBeGreaterThanOrEqual(1);
    expect(delivered.every((d) => d.status === 200)).toBe(true);
    expect(delivered[0]!.signature).toMatch(/^t=\d+,kid=ds_[\w-]+,ed25519=[\w-]+$/);

    // Every message processed exactly once, in each stream's order.
    const results = (await (await gatewayFetch(`/v1/stream/${output}`)).json()) as { stream: string; processed: { n: number } }[];
    const byStream = (path: string) => results.filter((r) => r.stream === path).map((r) => r.processed.n);
    expect(byStream(`${root}/a`)).toEqual([0, 1, 3]);
    expect(byStream(`${root}/b`)).toEqual([2]);
    expect(results).toHaveLength(4);

    // Nothing pending: no further wake comes, and a later append wakes the agent once more.
    const before = delivered.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(delivered.length).toBe(before);
    await gatewayFetch(`/v1/stream/${root}/b`, { method: "POST", headers: json, body: JSON.stringify({ n: 4 }) });
    await until(async () => (await view()).streams.find((s) => s.path === `${root}/b`)?.acked_offset === encodeOffset(2), "the next wake acked");
    expect(delivered.length).toBeGreaterThan(before);
    expect((await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, { method: "DELETE" })).status).toBe(204);
  });

  it("refuses a wake whose body or signature was changed, or one for another subscription, and moves nothing", async () => {
    const root = freshPath("wr");
    const id = freshPath("agent");
    const output = `${root}-out/results`;
    agentEnv = { ...agentEnv, SUBSCRIPTION_ID: id, OUTPUT_STREAM: output };
    expect((await gatewayFetch(`/v1/stream/${output}`, { method: "PUT", headers: json, body: "[]" })).status).toBe(201);
    // The bus reaches only a stand-in that answers 503, so the wake stays unacked (retried with the
    // same wake id and generation) while this test hands copies of it to the real agent.
    const serve = agent.fetch;
    agent.fetch = async () => new Response("down", { status: 503 });
    try {
      await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, {
        method: "PUT",
        headers: json,
        body: JSON.stringify({ type: "webhook", pattern: `${root}/*`, webhook: { url: "https://agent.example/wake" } }),
      });
      await gatewayFetch(`/v1/stream/${root}/x`, { method: "PUT", headers: json, body: JSON.stringify([{ n: 0 }]) });
      const { raw, signature } = await until(async () => delivered[0], "a wake");
      if (signature === null) throw new Error("the wake carried no Webhook-Signature");
      const send = (body: string, sig: string, env: WebhookAgentEnv = agentEnv) =>
        serve(new Request("https://agent.example/wake", { method: "POST", headers: { ...json, "Webhook-Signature": sig }, body }), env);
      expect((await send(raw.replace('"generation":', '"generation": '), signature)).status).toBe(401);
      const [t, kid, sig] = signature.split(",");
      // One character of the signature's value changed (its 11th: six significant bits).
      const flipped = `${sig!.slice(0, 18)}${sig![18] === "A" ? "B" : "A"}${sig!.slice(19)}`;
      expect((await send(raw, `${t},${kid},${flipped}`)).status).toBe(401);
      expect((await send(raw, `t=${Number(t!.slice(2)) - 3600},${kid},${sig}`)).status).toBe(401);
      expect((await send(raw, signature, { ...agentEnv, SUBSCRIPTION_ID: "someone-else" })).status).toBe(401);
      const v = (await (await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`)).json()) as View;
      expect(v.streams).toEqual([expect.objectContaining({ path: `${root}/x`, acked_offset: encodeOffset(0) })]);
      expect(await (await gatewayFetch(`/v1/stream/${output}`)).json()).toEqual([]);
      // The genuine wake, as the bus sent it, is accepted and acks the stream.
      expect((await send(raw, signature)).status).toBe(200);
      const after = (await (await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`)).json()) as View;
      expect(after.streams[0]!.acked_offset).toBe(encodeOffset(1));
    } finally {
      agent.fetch = serve;
      await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, { method: "DELETE" });
    }
  });
});
