/**
 * Pure units of waiting, giving up and credentials: the retry budget, `waitFor`, token sources,
 * schema checks; and the bus against sockets the test plays the topic on, for timings a real bus
 * cannot be made to hit on cue (a frame withdrawn before its socket opens, a welcome that never
 * comes, a credential that ends on a live socket). No bus needed.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ReconnectBudget } from "../src/backoff.ts";
import { connect } from "../src/client.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { conform } from "../src/standard-schema.ts";
import type { StatusEvent } from "../src/status.ts";
import { credentials } from "../src/token.ts";
import type { SocketLike, Transport, TransportTarget } from "../src/transport.ts";
import { abortError, timeoutOf, waitFor } from "../src/wait.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(predicate: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

/** The rejection of `p` (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<DovetailError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(DovetailError);
    return error as DovetailError;
  }
  throw new Error("expected a rejection");
}

describe("ReconnectBudget", () => {
  const noJitter = () => 1;

  it("gives up after maxAttempts consecutive failures, and is whole again after a connection", () => {
    const budget = new ReconnectBudget({ maxAttempts: 3, initialDelayMs: 100 }, noJitter);
    budget.down(0);
    expect(budget.failed(0)).toBe(100);
    expect(budget.failed(100)).toBe(200);
    expect(budget.failed(300)).toBeNull();
    budget.connected();
    expect(budget.failed(1000)).toBe(100);
  });

  it("gives up once maxElapsedMs has passed since the connection went down, moving the last retry up to the limit", () => {
    const budget = new ReconnectBudget({ maxElapsedMs: 1000, initialDelayMs: 400, maxDelayMs: 5000 }, noJitter);
    budget.down(0);
    expect(budget.failed(10)).toBe(400);
    expect(budget.failed(410)).toBe(590); // 800 wanted, 590 left
    expect(budget.failed(1000)).toBeNull();
    expect(budget.downFor(1000)).toBe(1000);
  });

  it("retries forever by default", () => {
    const budget = new ReconnectBudget({}, noJitter);
    for (let i = 0; i < 1000; i++) expect(budget.failed(i * 10_000)).toBe(Math.min(5000, 100 * 2 ** i));
  });
});

describe("waitFor", () => {
  it("rejects with `timeout` after timeoutMs and aborts the run's signal with the same error", async () => {
    let seen: AbortSignal | null = null;
    const error = await rejection(
      waitFor("a thing", { timeoutMs: 30 }, (signal) => {
        seen = signal;
        return new Promise(() => {});
      }),
    );
    expect(error.code).toBe("timeout");
    expect(error.message).toMatch(/a thing: no answer within 30 ms/);
    expect(seen!.aborted).toBe(true);
    expect(seen!.reason).toBe(error);
  });

  it("rejects with `aborted` when the caller's signal fires, carrying its reason, and stops listening to it afterwards", async () => {
    const controller = new AbortController();
    const listeners = new Set<unknown>();
    const signal = controller.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((type: string, l: EventListener, o?: AddEventListenerOptions) => {
      listeners.add(l);
      add(type, l, o);
    }) as typeof add;
    signal.removeEventListener = ((type: string, l: EventListener) => {
      listeners.delete(l);
      remove(type, l);
    }) as typeof remove;

    expect(await waitFor("quick", { signal }, async () => 7)).toBe(7);
    expect(listeners.size).toBe(0); // a long-lived signal does not collect listeners

    const pending = waitFor("slow", { signal, timeoutMs: Infinity }, () => new Promise(() => {}));
    controller.abort("user went away");
    const error = await rejection(pending);
    expect(error).toMatchObject({ code: "aborted", cause: "user went away" });
  });

  it("an AbortSignal.timeout() signal ends the wait as `timeout`; an already aborted signal rejects at once", async () => {
    const error = await rejection(waitFor("t", { signal: AbortSignal.timeout(20), timeoutMs: Infinity }, () => new Promise(() => {})));
    expect(error.code).toBe("timeout");
    let ran = false;
    const early = await rejection(waitFor("t", { signal: AbortSignal.abort() }, async () => (ran = true)));
    expect(early.code).toBe("aborted");
    expect(ran).toBe(false);
    expect(abortError(AbortSignal.abort(new DovetailError("closed", "mine")), "t").message).toBe("mine");
  });

  it("takes the default when no timeout is given, and refuses a negative or NaN one", () => {
    expect(timeoutOf({}, 1234)).toBe(1234);
    expect(timeoutOf({ timeoutMs: 3_000_000_000 })).toBe(Infinity);
    expect(() => timeoutOf({ timeoutMs: -1 })).toThrow(/timeoutMs/);
    expect(() => timeoutOf({ timeoutMs: Number.NaN })).toThrow(/timeoutMs/);
  });
});

describe("credentials", () => {
  it("a string is used as is; a function is called every time", async () => {
    expect(await credentials("k").get()).toBe("k");
    expect(credentials("k").refreshable).toBe(false);
    let calls = 0;
    const fn = credentials(() => `t${++calls}`);
    expect([await fn.get(), await fn.get()]).toEqual(["t1", "t2"]);
    expect(fn.refreshable).toBe(true);
    expect(await credentials(async () => "async").get()).toBe("async");
  });

  it("a failing function is a retryable `closed` unless it throws a DovetailError; a non-string is `invalid_field`", async () => {
    await expect(
      credentials(() => {
        throw new Error("token service down");
      }).get(),
    ).rejects.toMatchObject({ code: "closed", message: expect.stringMatching(/token service down/) });
    await expect(
      credentials(() => {
        throw new DovetailError("unauthorized", "signed out");
      }).get(),
    ).rejects.toMatchObject({ code: "unauthorized" });
    await expect(credentials((() => 42) as unknown as () => string).get()).rejects.toMatchObject({ code: "invalid_field" });
  });
});

describe("conform (Standard Schema)", () => {
  const Order = z.object({ id: z.string(), qty: z.number().int().positive() });

  it("returns the schema's output for a value that fits, with its transforms applied", async () => {
    expect(await conform(Order, { id: "a", qty: 2, extra: 1 }, 0, "t")).toEqual({ id: "a", qty: 2 });
    const Trimmed = z.string().transform((s) => s.trim());
    expect(await conform(Trimmed, "  x ", 0, "t")).toBe("x");
  });

  it("rejects a value that does not fit with schema_mismatch, its offset and the schema's issues", async () => {
    const error = await rejection(conform(Order, { id: 7, qty: -1 }, 41, "orders"));
    expect(error.code).toBe("schema_mismatch");
    expect(error.details.offset).toBe(41);
    expect(error.details.issues!.map((i) => i.path)).toEqual([["id"], ["qty"]]);
    expect(error.message).toMatch(/^message 41 of orders does not fit the schema: id: .+ \(and 1 more\)$/);
  });

  it("accepts any object with a `~standard` validate, async ones included", async () => {
    const even = {
      "~standard": {
        version: 1 as const,
        vendor: "test",
        validate: async (v: unknown) => (typeof v === "number" && v % 2 === 0 ? { value: v } : { issues: [{ message: "odd", path: [{ key: "n" }] }] }),
      },
    };
    expect(await conform(even, 4, 0, "t")).toBe(4);
    await expect(conform(even, 3, 9, "t")).rejects.toMatchObject({ code: "schema_mismatch", message: expect.stringMatching(/n: odd$/) });
  });
});

// -------------------------------------------------------------------------------------------
// The bus against sockets the test plays the topic on.

interface Played {
  token: string | undefined;
  socket: PlayedSocket | null;
}

class PlayedSocket implements SocketLike {
  readyState = 1;
  readonly sent: Record<string, unknown>[] = [];
  readonly #listeners: Record<string, ((event: never) => void)[]> = { message: [], close: [], error: [] };
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.readyState = 3;
  }
  addEventListener(type: string, listener: (event: never) => void): void {
    this.#listeners[type]!.push(listener);
  }
  answer(frame: Record<string, unknown>): void {
    for (const l of this.#listeners.message!) (l as (e: { data: string }) => void)({ data: JSON.stringify(frame) });
  }
  closeFromServer(code: number, reason = ""): void {
    this.readyState = 3;
    for (const l of this.#listeners.close!) (l as (e: { code: number; reason: string }) => void)({ code, reason });
  }
  frames(type: string): Record<string, unknown>[] {
    return this.sent.filter((f) => f.type === type);
  }
}

const WELCOME = {
  type: "welcome",
  version: 1,
  topic: "t",
  head: 0,
  earliest: 0,
  limits: { maxMessageBytes: 1 << 20, maxBatchMessages: 1000, maxBatchBytes: 1 << 23 },
};

/**
 * A transport whose attempts the test decides: `open` (default) resolves with a socket that is
 * welcomed at once, `hang` never settles, `silent` opens a socket that never says welcome.
 */
function playedTransport(mode: () => "open" | "hang" | "silent" = () => "open") {
  const attempts: Played[] = [];
  const transport: Transport = async (target: TransportTarget) => {
    const attempt: Played = { token: target.token, socket: null };
    attempts.push(attempt);
    const m = mode();
    if (m === "hang") return new Promise<SocketLike>(() => {});
    const socket = new PlayedSocket();
    attempt.socket = socket;
    if (m === "open") setTimeout(() => socket.answer(WELCOME), 0); // after the link has added its listeners
    return socket;
  };
  return { transport, attempts, last: () => attempts.at(-1)!.socket! };
}

function collect(iterable: AsyncIterable<StatusEvent>): StatusEvent[] {
  const events: StatusEvent[] = [];
  void (async () => {
    for await (const e of iterable) events.push(e);
  })();
  return events;
}

describe("publish waits (played topic)", () => {
  it("a publish that times out before its socket opens is withdrawn: it is never sent, even once the socket opens", async () => {
    let mode: "hang" | "open" = "hang";
    const played = playedTransport(() => mode);
    const bus = connect("http://127.0.0.1:9", {
      transport: played.transport,
      pingIntervalMs: 0,
      connectTimeoutMs: 100,
      reconnect: { initialDelayMs: 10, maxDelayMs: 10 },
    });
    const error = await rejection(bus.publish("t", { n: 1 }, { timeoutMs: 50 }));
    expect(error.code).toBe("timeout");
    expect(error.message).toMatch(/publish to t: no answer within 50 ms; it was never sent/);

    mode = "open";
    const later = bus.publish("t", { n: 2 });
    await until(() => (played.attempts.at(-1)?.socket?.frames("publish").length ?? 0) === 1, "the second publish");
    const frames = played.last().frames("publish");
    expect(frames.map((f) => f.messages)).toMatchObject([[{ data: { n: 2 }, headers: { traceparent: expect.any(String) } }]]);
    played.last().answer({ type: "ack", id: frames[0]!.id, offset: 0, count: 1 });
    expect(await later).toEqual({ offset: 0 });
    await bus.close();
  });

  it("a publish that times out after it was sent says it may be stored; close() does not wait for its confirm", async () => {
    const played = playedTransport();
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0 });
    const error = await rejection(bus.publish("t", 1, { timeoutMs: 100 }));
    expect(error.message).toMatch(/it was sent and may still be stored/);
    expect(played.last().frames("publish")).toHaveLength(1);
    await bus.close(); // the frame is still unanswered: it must not hold close()
  });

  it("an aborted publish rejects with `aborted` and the signal's reason", async () => {
    const played = playedTransport(() => "hang");
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0 });
    const controller = new AbortController();
    const publishing = bus.publish("t", 1, { signal: controller.signal, timeoutMs: Infinity });
    setTimeout(() => controller.abort(new Error("shutting down")), 20);
    const error = await rejection(publishing);
    expect(error.code).toBe("aborted");
    expect((error.cause as Error).message).toBe("shutting down");
    await bus.close();
  });

  it("each publisher send settles by its own deadline while the connection hangs; flush then resolves and nothing is sent late", async () => {
    let mode: "hang" | "open" = "hang";
    const played = playedTransport(() => mode);
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0, connectTimeoutMs: 60, reconnect: { maxDelayMs: 20 } });
    const pub = bus.publisher("t", { lingerMs: 0, maxBatch: 2, maxInFlight: 1, maxQueued: 4, timeoutMs: 150 });
    const started = Date.now();
    const sends = [1, 2, 3, 4, 5, 6].map((n) => pub.send(n));
    const controller = new AbortController();
    const aborted = pub.send(7, { signal: controller.signal });
    controller.abort();
    const results = await Promise.allSettled([...sends, aborted]);
    expect(results.map((r) => r.status === "rejected" && (r.reason as DovetailError).code)).toEqual([...Array(6).fill("timeout"), "aborted"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(145);
    for (const r of results) expect((r as PromiseRejectedResult).reason.message).toMatch(/it was never sent/);
    await pub.flush();
    expect(pub.queued).toBe(0);

    mode = "open";
    const offset = pub.send(8, { timeoutMs: 30_000 });
    await until(() => (played.attempts.at(-1)?.socket?.frames("publish").length ?? 0) === 1, "the next frame");
    const frame = played.last().frames("publish")[0]!;
    expect(frame.messages).toMatchObject([{ data: 8 }]); // none of the timed-out messages went (a traceparent header may be there)
    played.last().answer({ type: "ack", id: frame.id, offset: 0, count: 1 });
    expect(await offset).toBe(0);
    await bus.close();
  });
});

describe("publisher timeouts count from the last confirm (played topic)", () => {
  it("sends queued behind a slow topic whose confirms keep coming wait their turn; they fail only once the confirms stop", async () => {
    const played = playedTransport();
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0 });
    const pub = bus.publisher("t", { lingerMs: 0, maxBatch: 1, maxInFlight: 1, timeoutMs: 150 });
    const sends = Array.from({ length: 8 }, (_, n) => pub.send(n));
    const started = Date.now();
    // The topic answers one frame every 60 ms: 480 ms in all, three times the timeout.
    for (let acked = 0; acked < 8; acked++) {
      await until(() => (played.attempts[0]?.socket?.frames("publish").length ?? 0) > acked, `frame ${acked}`);
      await sleep(60);
      const f = played.last().frames("publish")[acked]!;
      played.last().answer({ type: "ack", id: f.id, offset: acked, count: 1 });
    }
    expect(await Promise.all(sends)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);

    // Now the topic goes quiet: what is held fails after the timeout, counted from the last confirm.
    const quiet = [pub.send(8), pub.send(9)];
    const results = await Promise.allSettled(quiet);
    expect(results.map((r) => r.status === "rejected" && (r.reason as DovetailError).code)).toEqual(["timeout", "timeout"]);
    await bus.close({ force: true });
  });
});

describe("connecting (played topic)", () => {
  it("an attempt with no welcome within connectTimeoutMs fails and is retried; the give-up error names the attempts and the cause", async () => {
    const played = playedTransport(() => "silent");
    const bus = connect("http://127.0.0.1:9", {
      transport: played.transport,
      pingIntervalMs: 0,
      connectTimeoutMs: 50,
      reconnect: { maxAttempts: 3, initialDelayMs: 5 },
    });
    const events = collect(bus.status());
    const error = await rejection(bus.publish("t", 1, { timeoutMs: Infinity }));
    expect(error.code).toBe("closed");
    expect(error.message).toMatch(/gave up connecting to t after 3 failed attempts in \d+ ms: no welcome from t within 50 ms/);
    expect((error.cause as DovetailError).code).toBe("timeout");
    expect(played.attempts).toHaveLength(3);
    expect(events.filter((e) => e.type === "failed")).toEqual([{ type: "failed", topic: "t", role: "publish", error }]);
    await bus.close();
  });

  it("a subscription not established within its timeoutMs ends with `timeout` naming the last connection error", async () => {
    const played = playedTransport(() => "silent");
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0, connectTimeoutMs: 40, reconnect: { initialDelayMs: 5 } });
    const error = await rejection(bus.subscribe("t", { timeoutMs: 200 }).next());
    expect(error.code).toBe("timeout");
    expect(error.message).toMatch(/subscribing to t: no answer within 200 ms \(last error: no welcome from t within 40 ms\)/);
    await bus.close();
  });

  it("a subscription whose signal fires rejects `next()` with `aborted` and closes its socket", async () => {
    const played = playedTransport();
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0 });
    const controller = new AbortController();
    const sub = bus.subscribe("t", { signal: controller.signal });
    await until(() => played.attempts[0]?.socket?.frames("subscribe").length === 1, "the subscribe frame");
    const waiting = sub.next();
    controller.abort();
    expect((await rejection(waiting)).code).toBe("aborted");
    expect(played.last().readyState).toBe(3);
    await bus.close();
  });
});

describe("token functions (played topic)", () => {
  /** The topic ends the socket's credential as the gateway does: an `unauthorized` error frame, then close 4401. */
  function endCredential(socket: PlayedSocket): void {
    socket.answer({ type: "error", code: "unauthorized", message: "the credential this socket was opened with has expired" });
    socket.closeFromServer(4401, "credential revoked or expired");
  }

  it("a credential that ends under a live subscription is refreshed once and the subscription resumes at the next offset", async () => {
    const played = playedTransport();
    let minted = 0;
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0, token: () => `jwt-${++minted}` });
    const sub = bus.subscribe("t", { from: 0 });
    await until(() => played.attempts[0]?.socket?.frames("subscribe").length === 1, "the first subscribe");
    const first = played.last();
    const subscribe1 = first.frames("subscribe")[0]!;
    first.answer({ type: "subscribed", id: subscribe1.id, next: 0 });
    first.answer({ type: "messages", messages: [0, 1, 2].map((offset) => ({ offset, time: 1, data: offset })) });
    expect((await sub.next()).value.offset).toBe(0);

    endCredential(first);
    await until(() => played.attempts.length === 2 && played.last().frames("subscribe").length === 1, "the resubscribe");
    expect(played.attempts.map((a) => a.token)).toEqual(["jwt-1", "jwt-2"]);
    const subscribe2 = played.last().frames("subscribe")[0]!;
    expect(subscribe2.from).toBe(3); // after what it has, buffered ones included
    played.last().answer({ type: "subscribed", id: subscribe2.id, next: 3 });
    played.last().answer({ type: "messages", messages: [{ offset: 3, time: 1, data: 3 }] });
    const offsets = [];
    for (let i = 0; i < 3; i++) offsets.push((await sub.next()).value.offset);
    expect(offsets).toEqual([1, 2, 3]);

    // It happens again later: a fresh token each time, never a dead iterator.
    endCredential(played.last());
    await until(() => played.attempts.length === 3, "the third connection");
    expect(played.attempts.at(-1)!.token).toBe("jwt-3");
    await bus.close();
  });

  it("a token function that returns the refused token again ends the subscription with a clear `unauthorized` instead of looping", async () => {
    const played = playedTransport();
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0, token: () => "stale" });
    const sub = bus.subscribe("t");
    await until(() => played.attempts[0]?.socket?.frames("subscribe").length === 1, "the subscribe");
    endCredential(played.last());
    const error = await rejection(sub.next());
    expect(error.code).toBe("unauthorized");
    expect(error.message).toMatch(/returned the same token again/);
    expect((error.cause as DovetailError).message).toMatch(/has expired/);
    expect(played.attempts).toHaveLength(1);
    await bus.close();
  });

  it("a fresh token that is refused too ends the link: one refresh per refusal, not a loop", async () => {
    const played = playedTransport(() => "silent");
    let minted = 0;
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0, token: () => `bad-${++minted}` });
    const publishing = bus.publish("t", 1, { timeoutMs: Infinity });
    for (let n = 1; n <= 2; n++) {
      await until(() => played.attempts.length === n && played.last() !== null, `attempt ${n}`);
      played.last().answer({ type: "error", code: "unauthorized", message: "invalid signature" });
      played.last().closeFromServer(4401);
    }
    const error = await rejection(publishing);
    expect(error).toMatchObject({ code: "unauthorized", message: "invalid signature" });
    expect(played.attempts.map((a) => a.token)).toEqual(["bad-1", "bad-2"]);
    await bus.close();
  });

  it("a static token that is refused is final at once", async () => {
    const played = playedTransport(() => "silent");
    const bus = connect("http://127.0.0.1:9", { transport: played.transport, pingIntervalMs: 0, token: "bad" });
    const publishing = bus.publish("t", 1);
    await until(() => played.attempts.length === 1 && played.last() !== null, "the attempt");
    played.last().answer({ type: "error", code: "unauthorized", message: "unknown key" });
    played.last().closeFromServer(4401);
    expect((await rejection(publishing)).code).toBe("unauthorized");
    await sleep(50);
    expect(played.attempts).toHaveLength(1);
    await bus.close();
  });
});
