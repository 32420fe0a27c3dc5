/**
 * Dovetail through @dovetail/sdk, the way an application uses it (issue 17: the bench measures
 * what users run), behind the harness's Publisher / Subscriber interfaces (systems.ts). One `Bus`
 * per publisher or subscriber, so each has its own connection, as each raw client has its socket.
 *
 * - Publisher: `bus.publisher(topic)` with default options, one `pub.send(payload)` per message;
 *   the SDK batches what is sent within its linger into frames, as nats.js coalesces publishes.
 *   The SDK has no call that takes a batch, so a "batched" send is the same loop, its promises
 *   awaited together. Each `send()` resolves once the topic has committed the message.
 * - Subscriber: `for await (const m of bus.subscribe(topic, { from: 0 }))` with the default buffer
 *   (credit); `from: 0` as the raw subscriber's `subscribe` frame, so nothing published between
 *   its welcome and its `subscribed` answer is missed. A slow one has a buffer of 1 and takes a
 *   message every 1/rate s, so the topic holds the rest.
 *
 * Loaded only by the workers that run the SDK (systems.ts imports this file when asked for it).
 *
 * @example
 * const pub = await sdkPublisher({ url: "http://127.0.0.1:8787", topic: "bench.t" });
 * await pub.send(["...100 bytes..."], false);
 */
import { connect } from "../../sdk/src/index.ts";
import type { Endpoint, OnMessage, Publisher, Subscriber, SubscriberOptions } from "./systems.ts";

/** Longest wait for a subscription's socket to be welcomed. */
const SUBSCRIBE_TIMEOUT_MS = 15_000;

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

export async function sdkPublisher(ep: Endpoint): Promise<Publisher> {
  const bus = connect(ep.url);
  // Fails fast on a wrong URL; the topic's socket opens with the first send (warm-up).
  await bus.ready();
  const pub = bus.publisher<string>(ep.topic);
  return {
    async send(payloads) {
      if (payloads.length === 1) {
        await pub.send(payloads[0]!);
        return;
      }
      await Promise.all(payloads.map((p) => pub.send(p)));
    },
    async close() {
      await pub.close();
      await bus.close();
    },
  };
}

export async function sdkSubscriber(ep: Endpoint, onMessage: OnMessage, options: SubscriberOptions = {}): Promise<Subscriber> {
  const bus = connect(ep.url);
  const status = bus.status();
  const slow = options.slowRatePerSec;
  const sub = bus.subscribe<string>(ep.topic, slow ? { from: 0, buffer: 1 } : { from: 0 });
  let closing = false;
  const fail = (reason: string) => closing || options.onFailure?.(`dovetail-sdk subscriber: ${reason}`);
  void (async () => {
    for await (const m of sub) {
      onMessage(m.data);
      if (slow) await new Promise((r) => setTimeout(r, 1000 / slow));
    }
  })().catch((e: unknown) => fail(errorText(e)));
  // Ready once the topic said welcome, as the raw subscriber is (`from: 0` covers the rest); a
  // connection that gives up later ends the iterator above with its error.
  const connected = (async () => {
    for await (const e of status) if (e.type === "connected" || e.type === "failed") return e;
    return null;
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const e = await Promise.race([
    connected,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`dovetail-sdk: subscription to ${ep.topic} not connected after ${SUBSCRIBE_TIMEOUT_MS} ms`)),
        SUBSCRIBE_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  void status.return?.();
  if (e?.type !== "connected") {
    closing = true;
    sub.close();
    await bus.close({ force: true });
    throw new Error(`dovetail-sdk: subscription failed: ${e?.type === "failed" ? e.error.message : "bus closed"}`);
  }
  return {
    async close() {
      closing = true;
      sub.close();
      await bus.close();
    },
  };
}
