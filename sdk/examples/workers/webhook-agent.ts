/**
 * A serverless agent woken by a Durable Streams subscription's webhook (docs/streams.md
 * "Subscriptions"): a Worker that verifies the wake's signature, reads every stream with pending
 * messages from its cursor, processes them (here: appends one result per message to
 * `OUTPUT_STREAM`), then acks each stream where its reading stopped through the wake's callback.
 * `test/workers/webhook-agent.test.ts` runs it inside workerd against the bus's real webhooks.
 *
 * Deploy it as a Worker with the variables below, then point a subscription at it:
 *   PUT /v1/stream/__ds/subscriptions/orders-agent
 *   {"type":"webhook","pattern":"orders/*","webhook":{"url":"https://<your worker>/wake"}}
 */
import { verifyWebhook, type WakeStreamView } from "../../src/webhooks.ts";

export interface WebhookAgentEnv {
  /** The bus, e.g. `https://bus.example`. */
  DOVETAIL_URL: string;
  /** A token that may consume the subscription's streams and publish to OUTPUT_STREAM. */
  DOVETAIL_TOKEN: string;
  /** The subscription this agent serves (one signing key serves every tenant: check it). */
  SUBSCRIPTION_ID: string;
  /** A JSON stream the results go to (created beforehand). */
  OUTPUT_STREAM: string;
}

/** Read `stream` from its cursor to its tail; the offset to ack (where the reading stopped) and the messages. */
async function readPending(env: WebhookAgentEnv, stream: WakeStreamView): Promise<{ next: string; messages: unknown[] }> {
  const messages: unknown[] = [];
  let offset = stream.acked_offset;
  for (;;) {
    const res = await fetch(`${env.DOVETAIL_URL}/v1/stream/${stream.path}?offset=${encodeURIComponent(offset)}`, {
      headers: { Authorization: `Bearer ${env.DOVETAIL_TOKEN}` },
    });
    if (!res.ok) throw new Error(`reading ${stream.path}: HTTP ${res.status} ${await res.text()}`);
    messages.push(...((await res.json()) as unknown[]));
    offset = res.headers.get("Stream-Next-Offset") ?? offset;
    // One page per request (1,000 messages at most): read on until the tail the wake reported.
    if (res.headers.get("Stream-Up-To-Date") === "true" || offset >= stream.tail_offset) return { next: offset, messages };
  }
}

export default {
  async fetch(request: Request, env: WebhookAgentEnv): Promise<Response> {
    if (request.method !== "POST") return new Response("POST a wake here\n", { status: 405 });
    let wake: Awaited<ReturnType<typeof verifyWebhook>>;
    try {
      wake = await verifyWebhook(request, { jwksUrl: `${env.DOVETAIL_URL}/v1/stream/__ds/jwks.json`, subscriptionId: env.SUBSCRIPTION_ID });
    } catch (error) {
      return Response.json({ error: (error as Error).message }, { status: 401 });
    }
    const { body } = wake;
    const acks: { stream: string; offset: string }[] = [];
    for (const stream of body.streams.filter((s) => s.has_pending)) {
      const { next, messages } = await readPending(env, stream);
      if (messages.length > 0) {
        // The work: one result per message. A real agent would call a model or a tool here.
        const results = messages.map((data) => ({ stream: stream.path, processed: data }));
        const res = await fetch(`${env.DOVETAIL_URL}/v1/stream/${env.OUTPUT_STREAM}`, {
          method: "POST",
          headers: { Authorization: `Bearer ${env.DOVETAIL_TOKEN}`, "Content-Type": "application/json" },
          body: JSON.stringify(results),
        });
        if (!res.ok) throw new Error(`writing results: HTTP ${res.status}`);
      }
      acks.push({ stream: stream.path, offset: next });
    }
    // Ack what was processed and end the wake: `done` lets the bus wake this agent again for
    // whatever arrived meanwhile. (Answering `{"done":true}` instead would ack every stream at the
    // tail the wake reported; the callback acks exactly where the reading stopped.)
    const callback = await fetch(body.callback_url, {
      method: "POST",
      headers: { Authorization: `Bearer ${body.callback_token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ wake_id: body.wake_id, generation: body.generation, acks, done: true }),
    });
    if (!callback.ok) return Response.json({ error: `callback: HTTP ${callback.status} ${await callback.text()}` }, { status: 502 });
    return Response.json({ acked: acks.length });
  },
};
