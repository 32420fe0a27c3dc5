/**
 * Calls that wait, against real sockets: every one ends with a typed error when its timeout
 * passes or its signal fires (a port where nothing listens, a server that accepts and never
 * answers); `bus.ready()` fails fast on a bad token; the give-up policy ends connections and says
 * so; a token function keeps a subscription alive across JWT expiries with no gap and no
 * duplicate; schemas check what a subscription yields. The bus runs with auth on, as deployed.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { connect, DovetailError, type Bus, type Message, type StatusEvent } from "../../sdk/src/index.ts";
import { freePort, startBus, type BusProcess } from "../support/bus-process.ts";

let counter = 0;
const freshTopic = () => `waits.${Date.now().toString(36)}.${++counter}`;

/** The rejection of `p` (fails the test if it resolves), and how long it took. */
async function rejection(p: Promise<unknown>): Promise<{ error: DovetailError; ms: number }> {
  const started = Date.now();
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(DovetailError);
    return { error: error as DovetailError, ms: Date.now() - started };
  }
  throw new Error("expected a rejection");
}

function collect(iterable: AsyncIterable<StatusEvent>): StatusEvent[] {
  const events: StatusEvent[] = [];
  void (async () => {
    for await (const e of iterable) events.push(e);
  })();
  return events;
}

async function until(predicate: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("calls that wait", () => {
  let server: BusProcess;
  let nowhere: string;
  /** Accepts TCP connections and never answers: an HTTP request or a WebSocket upgrade just hangs. */
  let silent: net.Server;
  let silentUrl: string;
  const held: net.Socket[] = [];
  const opened: Bus[] = [];
  const open = (url: string, options: Parameters<typeof connect>[1] = {}) => {
    const bus = connect(url, options);
    opened.push(bus);
    return bus;
  };

  /** An HS256 JWT for tenant `default` signed with the bus's development secret, valid for `seconds`. */
  async function mintJwt(seconds: number, scope = "publish subscribe"): Promise<string> {
    const secret = new TextEncoder().encode(readFileSync(path.join(server.state, "dev-secret"), "utf8").trim());
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ tenant: "default", scope })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("dovetail")
      .setAudience("dovetail")
      .setSubject("waits-test")
      .setJti(crypto.randomUUID()) // two tokens minted in one second still differ
      .setIssuedAt(now)
      .setExpirationTime(now + seconds)
      .sign(secret);
  }

  beforeAll(async () => {
    server = await startBus({ auth: true });
    nowhere = `http://127.0.0.1:${await freePort()}`;
    silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    silentUrl = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    await Promise.all(opened.map((b) => b.close({ force: true })));
    for (const s of held) s.destroy();
    silent?.close();
    await server?.stop();
  });

  describe("timeouts and signals", () => {
    it("a publish to a port where nothing listens rejects with `timeout` after its timeoutMs and says it was never sent", async () => {
      const bus = open(nowhere);
      const { error, ms } = await rejection(bus.publish(freshTopic(), { n: 1 }, { timeoutMs: 500 }));
      expect(error.code).toBe("timeout");
      expect(error.message).toMatch(/no answer within 500 ms; it was never sent/);
      expect(ms).toBeGreaterThanOrEqual(490);
    });

    it("the bus-wide timeoutMs is the default of every call; a publisher's sends and flush settle by it too", async () => {
      const bus = open(nowhere, { timeoutMs: 300 });
      const topic = freshTopic();
      expect((await rejection(bus.publish(topic, 1))).error.code).toBe("timeout");
      const pub = bus.publisher(topic, { lingerMs: 0 });
      const sends = [1, 2, 3].map((n) => pub.send(n));
      // The flush waits for the sends under the same 300 ms: it resolves once they settled, or
      // (its timer firing first on a busy machine) ends with `timeout` itself.
      const flushed = await pub.flush().then(
        () => "settled",
        (e: DovetailError) => e.code,
      );
      expect(["settled", "timeout"]).toContain(flushed);
      for (const s of sends) expect((await rejection(s)).error.code).toBe("timeout");
    });

    it("aborting a publish, a send, a flush and a subscription mid-wait rejects each with `aborted` and the signal's reason", async () => {
      const bus = open(nowhere);
      const topic = freshTopic();
      const controller = new AbortController();
      const signal = controller.signal;
      const publishing = bus.publish(topic, 1, { signal });
      const pub = bus.publisher(topic);
      const sending = pub.send(2, { signal, timeoutMs: Infinity });
      const unrelated = pub.send(3, { timeoutMs: 60_000 });
      const flushing = pub.flush({ signal });
      const sub = bus.subscribe(topic, { signal });
      const next = sub.next();
      setTimeout(() => controller.abort(new Error("shutting down")), 100);
      for (const p of [publishing, sending, flushing, next]) {
        const { error } = await rejection(p);
        expect(error.code).toBe("aborted");
        expect((error.cause as Error).message).toBe("shutting down");
      }
      // The abort stopped only the waits that carried the signal.
      const race = await Promise.race([
        unrelated.then(
          () => "settled",
          () => "settled",
        ),
        new Promise((r) => setTimeout(() => r("waiting"), 200)),
      ]);
      expect(race).toBe("waiting");
      const ended = await rejection(pub.send(4, { signal: AbortSignal.timeout(50) }));
      expect(ended.error.code).toBe("timeout"); // AbortSignal.timeout() counts as a timeout
    });

    it("HTTP calls to a server that accepts and never answers time out; so does a publish whose upgrade is never answered", async () => {
      const bus = open(silentUrl, { connectTimeoutMs: 200 });
      const topic = freshTopic();
      const calls = [
        bus.info(topic, { timeoutMs: 300 }),
        bus.read(topic, { timeoutMs: 300 }),
        bus.topics({ timeoutMs: 300 }),
        bus.deleteTopic(topic, { timeoutMs: 300 }),
        bus.publish(topic, 1, { timeoutMs: 700 }),
      ].map(rejection);
      for (const { error, ms } of await Promise.all(calls)) {
        expect(error.code).toBe("timeout");
        expect(ms).toBeGreaterThanOrEqual(290);
      }
    });
  });

  describe("ready()", () => {
    it("resolves against the real bus with a good token, and with a token function", async () => {
      await open(server.url, { token: server.token }).ready();
      let calls = 0;
      await open(server.url, {
        token: async () => {
          calls++;
          return mintJwt(60);
        },
      }).ready({ timeoutMs: 10_000 });
      expect(calls).toBe(1);
    });

    it("rejects with the server's `unauthorized` for a bad token, without waiting for its timeout", async () => {
      const { error } = await rejection(open(server.url, { token: "dvt_0000000000000000_not-a-key" }).ready({ timeoutMs: 60_000 }));
      expect(error.code).toBe("unauthorized");
      const expired = await rejection(open(server.url, { token: await mintJwt(-60) }).ready({ timeoutMs: 60_000 }));
      expect(expired.error).toMatchObject({ code: "unauthorized", message: expect.stringMatching(/expired/) });
    });

    it("a token function asked again after a 401 must return a fresh token; the same one fails with a clear error", async () => {
      const stale = await mintJwt(-60);
      let calls = 0;
      const { error } = await rejection(
        open(server.url, {
          token: () => {
            calls++;
            return stale;
          },
        }).ready({ timeoutMs: 60_000 }),
      );
      expect(error.code).toBe("unauthorized");
      expect(error.message).toMatch(/returned the same token again/);
      expect(calls).toBe(2);
    });

    it("retries an unreachable bus until its timeout, then rejects with `timeout` naming the last error", async () => {
      const { error, ms } = await rejection(open(nowhere, { reconnect: { initialDelayMs: 20, maxDelayMs: 50 } }).ready({ timeoutMs: 400 }));
      expect(error.code).toBe("timeout");
      expect(error.message).toMatch(/last error: cannot reach/);
      expect((error.cause as DovetailError).code).toBe("closed");
      expect(ms).toBeGreaterThanOrEqual(390);
    });

    it("follows the give-up policy: `closed` after maxAttempts", async () => {
      const { error } = await rejection(open(nowhere, { reconnect: { maxAttempts: 2, initialDelayMs: 10 } }).ready({ timeoutMs: 60_000 }));
      expect(error.code).toBe("closed");
      expect(error.message).toMatch(/gave up reaching .* after 2 failed attempts/);
    });
  });

  describe("give-up policy", () => {
    it("after maxElapsedMs without a connection, pending calls reject with `closed` before their own timeouts, and a `failed` event says so", async () => {
      const bus = open(nowhere, { reconnect: { maxElapsedMs: 500, initialDelayMs: 20, maxDelayMs: 100 } });
      const events = collect(bus.status());
      const topic = freshTopic();
      const publishing = rejection(bus.publish(topic, 1, { timeoutMs: 60_000 }));
      const subscribing = rejection(bus.subscribe(topic, { timeoutMs: 60_000 }).next());
      for (const { error, ms } of [await publishing, await subscribing]) {
        expect(error.code).toBe("closed");
        expect(error.message).toMatch(/gave up connecting to .* after \d+ failed attempts in \d+ ms: cannot connect/);
        expect(ms).toBeGreaterThanOrEqual(450);
      }
      await until(() => events.filter((e) => e.type === "failed").length === 2, "two failed events");
      const failed = events.filter((e) => e.type === "failed");
      expect(failed.map((e) => e.role).sort()).toEqual(["publish", "subscribe"]);
      // A publish after giving up starts a fresh connection (and its own budget).
      expect((await rejection(bus.publish(topic, 2, { timeoutMs: 60_000 }))).error.code).toBe("closed");
    });

    it("a refused credential is final at once: one attempt, no retries", async () => {
      const bus = open(server.url, { token: "dvt_0000000000000000_not-a-key" });
      const events = collect(bus.status());
      const { error } = await rejection(bus.subscribe(freshTopic(), { from: 0 }).next());
      expect(error.code).toBe("unauthorized");
      await new Promise((r) => setTimeout(r, 300));
      expect(events.filter((e) => e.type === "connecting")).toHaveLength(1);
      expect(events.filter((e) => e.type === "failed")).toHaveLength(1);
    });
  });

  describe("token functions", () => {
    it("a subscription outlives its JWTs: each expiry (close 4401) brings one fresh token and a resume with no gap and no duplicate", async () => {
      const topic = freshTopic();
      const publisher = open(server.url, { token: server.token });
      let minted = 0;
      const subscriber = open(server.url, {
        token: () => {
          minted++;
          return mintJwt(2); // expires within 1 to 2 s
        },
      });
      const events = collect(subscriber.status());
      const sub = subscriber.subscribe(topic, { from: 0, buffer: 16 });
      const got: Message[] = [];
      const reading = (async () => {
        for await (const m of sub) got.push(m);
      })();

      let sent = 0;
      const started = Date.now();
      while (Date.now() - started < 6_500) {
        await publisher.publish(topic, sent++);
        await new Promise((r) => setTimeout(r, 20));
      }
      await until(() => got.length >= sent, `all ${sent} messages`);
      expect(got.map((m) => m.offset)).toEqual([...Array(sent).keys()]);
      expect(got.map((m) => m.data)).toEqual([...Array(sent).keys()]);

      const expiries = events.filter((e) => e.type === "disconnected" && e.error.code === "unauthorized");
      expect(expiries.length).toBeGreaterThanOrEqual(2);
      expect(minted).toBe(expiries.length + 1); // one fresh token per expiry, no more
      expect(events.filter((e) => e.type === "failed")).toEqual([]);
      sub.close();
      await reading;
    }, 60_000);

    it("a token function that keeps returning its expired token ends the subscription with a clear `unauthorized`, not a loop", async () => {
      const token = await mintJwt(1);
      let calls = 0;
      const bus = open(server.url, {
        token: () => {
          calls++;
          return token;
        },
      });
      const events = collect(bus.status());
      const { error } = await rejection(bus.subscribe(freshTopic()).next());
      expect(error.code).toBe("unauthorized");
      expect(error.message).toMatch(/returned the same token again/);
      expect(calls).toBe(2);
      expect(events.filter((e) => e.type === "connecting").length).toBeLessThanOrEqual(2);
    }, 30_000);
  });

  describe("typed payloads", () => {
    const Order = z.object({ id: z.string(), qty: z.number().int().positive() });
    type Order = z.infer<typeof Order>;

    it("a subscription with a zod schema yields typed data and throws `schema_mismatch` for a message that does not fit; iterating again continues", async () => {
      const bus = open(server.url, { token: server.token });
      const topic = freshTopic();
      await bus.publish<Order>(topic, { id: "a", qty: 1 });
      await bus.publish(topic, { id: "b", qty: -3 });
      await bus.publish<Order>(topic, { id: "c", qty: 2 });

      const sub = bus.subscribe(topic, { from: 0, schema: Order });
      const first = await sub.next();
      if (first.done) throw new Error("the subscription ended");
      const order: Order = first.value.data; // typed by the schema
      expect(first.value).toEqual({ offset: 0, data: { id: "a", qty: 1 }, headers: { traceparent: expect.any(String) }, time: expect.any(Number) });
      expect(order.qty).toBe(1);

      const { error } = await rejection(sub.next());
      expect(error.code).toBe("schema_mismatch");
      expect(error.details.offset).toBe(1);
      expect(error.details.issues).toEqual([expect.objectContaining({ path: ["qty"] })]);

      const third = await sub.next();
      expect(third.value).toMatchObject({ offset: 2, data: { id: "c", qty: 2 } });
      sub.close();
    });

    it("with onInvalid, messages that do not fit are handed to it and skipped", async () => {
      const bus = open(server.url, { token: server.token });
      const topic = freshTopic();
      const pub = bus.publisher<unknown>(topic);
      for (const data of [{ id: "a", qty: 1 }, "not an order", { id: "c", qty: 2 }, { id: "d" }]) void pub.send(data);
      await pub.flush();

      const invalid: { offset: number | undefined; data: unknown }[] = [];
      const sub = bus.subscribe(topic, {
        from: 0,
        schema: Order,
        onInvalid: (error, message) => void invalid.push({ offset: error.details.offset, data: message.data }),
      });
      const ids: string[] = [];
      for await (const msg of sub) {
        ids.push(msg.data.id);
        if (msg.offset === 2) break;
      }
      expect(ids).toEqual(["a", "c"]);
      expect(invalid).toEqual([{ offset: 1, data: "not an order" }]);
    });
  });
});
