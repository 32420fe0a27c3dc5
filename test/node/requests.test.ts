/**
 * Request/reply through the SDK against the real bus process (docs/requests.md): replies and
 * remote errors, `no_responders` and `timeout` as distinct errors, a late reply dropped, ten
 * responders sharing requests one each, HTTP requests answered by an SDK responder, and a
 * responder process killed with SIGKILL while it holds a request: `responder_gone` at once for a
 * plain request, the reply of another responder for a durable one.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, DovetailError, webSocketTransport, type Transport } from "../../sdk/src/index.ts";
import { freePort, startBus, type BusProcess } from "../support/bus-process.ts";
import { freshTopic, sdkClients } from "../support/sdk-clients.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let bus: BusProcess;
const clients = sdkClients(() => bus);
const client = clients.client;
const children: ChildProcess[] = [];

async function rejection(p: Promise<unknown>): Promise<DovetailError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(DovetailError);
    return error as DovetailError;
  }
  throw new Error("expected a rejection");
}

/** A responder process that holds every request; resolves once it serves, with a wait for its first request. */
async function holdingResponder(topic: string, group: string, durable: boolean): Promise<{ child: ChildProcess; got: Promise<unknown> }> {
  const child = spawn(process.execPath, [path.join(ROOT, "test/support/holding-responder.ts"), bus.url, bus.token!, topic, group, durable ? "1" : "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  let onRequest!: (data: unknown) => void;
  const got = new Promise<unknown>((resolve) => {
    onRequest = resolve;
  });
  await new Promise<void>((resolve, reject) => {
    let buffered = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line === "ready") resolve();
        else if (line.startsWith("request ")) onRequest(JSON.parse(line.slice("request ".length)));
      }
    });
    child.on("exit", (code) => reject(new Error(`responder exited early (${code})`)));
  });
  return { child, got };
}

beforeAll(async () => {
  bus = await startBus({ auth: true });
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await clients.closeAll();
  await bus?.stop();
});

describe("request/reply through the SDK", () => {
  it("resolves with the handler's return value and rejects with its error as remote_error", async () => {
    const topic = freshTopic("rr.basic");
    const responder = client();
    const server = await responder.serve<{ a: number; b: number }>(topic, ({ a, b }) => {
      if (a < 0) throw Object.assign(new Error("negative input"), { code: "E_NEGATIVE" });
      return a + b;
    });
    const requester = client();
    expect(await requester.request<number>(topic, { a: 1, b: 2 })).toBe(3);
    const error = await rejection(requester.request(topic, { a: -1, b: 2 }));
    expect(error.code).toBe("remote_error");
    expect(error.message).toBe("negative input");
    expect(error.details.remoteCode).toBe("E_NEGATIVE");
    // Across transports: the same responder answers HTTP.
    const res = await fetch(`${bus.url}/v1/topics/${encodeURIComponent(topic)}/request?timeoutMs=5000`, {
      method: "POST",
      headers: { Authorization: `Bearer ${bus.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ data: { a: 20, b: 22 } }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: 42 });
    server.close();
    await server.done;
    // A second responder in a bad group is refused before it serves.
    expect((await rejection(responder.serve(topic, () => 1, { group: "no spaces" }))).code).toBe("invalid_field");
  }, 30_000);

  it("tells no_responders (at once) from timeout, and drops a reply that comes after the timeout", async () => {
    const topic = freshTopic("rr.errors");
    const requester = client();
    const started = Date.now();
    expect((await rejection(requester.request(topic, 1, { timeoutMs: 10_000 }))).code).toBe("no_responders");
    expect(Date.now() - started).toBeLessThan(5000);
    let release!: () => void;
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    const server = await client().serve(topic, async (n: number) => {
      if (n === 1) await slow;
      return `answer ${n}`;
    });
    const timedOut = await rejection(requester.request(topic, 1, { timeoutMs: 200 }));
    expect(timedOut.code).toBe("timeout");
    const second = requester.request(topic, 2, { timeoutMs: 10_000 });
    release(); // the reply to 1 goes out now, late
    expect(await second).toBe("answer 2");
    const aborted = new AbortController();
    const third = requester.request(topic, 1, { signal: aborted.signal });
    aborted.abort();
    expect((await rejection(third)).code).toBe("aborted");
    server.close();
  }, 30_000);

  it("ends bus.serve()'s wait with timeout, and a request's with timeout, when the bus cannot be reached", async () => {
    const nobody = connect(`http://127.0.0.1:${await freePort()}`, { reconnect: { initialDelayMs: 20, maxDelayMs: 50 } });
    clients.track(nobody);
    expect((await rejection(nobody.serve("rr.unreachable", () => 1, { timeoutMs: 300 }))).code).toBe("timeout");
    expect((await rejection(nobody.request("rr.unreachable", 1, { timeoutMs: 300 }))).code).toBe("timeout");
  }, 30_000);

  it("shares requests across 10 responders of a group, each request answered once, a burst in a few frames", async () => {
    const topic = freshTopic("rr.group");
    const counts = new Array<number>(10).fill(0);
    const servers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        client().serve(
          topic,
          (n: number) => {
            counts[i]!++;
            return { n, by: i };
          },
          { group: "workers" },
        ),
      ),
    );
    // The requester's frames, counted: the requests of one tick leave in one batch frame.
    const frames = { sent: 0, received: 0 };
    const transport: Transport = async (target) => {
      const socket = await webSocketTransport()(target);
      const send = socket.send.bind(socket);
      socket.send = (text) => {
        frames.sent++;
        send(text);
      };
      socket.addEventListener("message", () => frames.received++);
      return socket;
    };
    const requester = connect(bus.url, { token: bus.token!, transport });
    clients.track(requester);
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, n) => requester.request<{ n: number; by: number }>(topic, n)));
    expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 1000 }, (_, n) => n));
    expect(frames.sent).toBeLessThanOrEqual(2);
    expect(frames.received).toBeLessThan(100); // welcome, then replies frames (at most one per responder reply frame)
    console.log(`1,000 requests in ${frames.sent} frame(s) out, answered in ${frames.received - 1} replies frame(s)`);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(counts).toEqual(new Array(10).fill(100)); // round-robin
    for (const s of servers) s.close();
  }, 60_000);

  it("rejects with responder_gone at once when the responder holding a request is killed with SIGKILL", async () => {
    const topic = freshTopic("rr.kill");
    const { child, got } = await holdingResponder(topic, "svc", false);
    const requester = client();
    const pending = requester.request(topic, { job: 1 }, { timeoutMs: 30_000 });
    expect(await got).toEqual({ job: 1 });
    const killedAt = Date.now();
    child.kill("SIGKILL");
    const error = await rejection(pending);
    const after = Date.now() - killedAt;
    expect(error.code).toBe("responder_gone");
    expect(after).toBeLessThan(10_000);
    console.log(`responder_gone ${after} ms after the responder was killed (timeout 30000 ms)`);
  }, 60_000);

  it("with durable: true, another responder answers a request whose responder was killed with SIGKILL", async () => {
    const topic = freshTopic("rr.durable");
    const { child, got } = await holdingResponder(topic, "svc", true);
    const requester = client();
    const pending = requester.request<{ doneBy: string }>(topic, { job: 2 }, { timeoutMs: 30_000, durable: true });
    expect(await got).toEqual({ job: 2 });
    const other = await client().serve(topic, (data: { job: number }, ctx) => ({ doneBy: "survivor", job: data.job, durable: ctx.durable }), {
      group: "svc",
      durable: true,
    });
    const killedAt = Date.now();
    child.kill("SIGKILL");
    expect(await pending).toEqual({ doneBy: "survivor", job: 2, durable: true });
    const after = Date.now() - killedAt;
    console.log(`durable request answered by another responder ${after} ms after the first was killed`);
    const group = await requester.group(topic, "svc");
    expect(group.pendingCount).toBe(0);
    other.close();
  }, 60_000);
});
