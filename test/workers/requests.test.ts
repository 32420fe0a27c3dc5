/**
 * Request/reply (objects/requests/, docs/requests.md) through the real gateway and topic objects:
 * raw `serve` / `request` / `reply` frames and `POST /v1/topics/{topic}/request`; `no_responders`,
 * `timeout` and `responder_gone` as distinct errors; a late reply dropped, never given to a later
 * request; one member of a group per request, round-robin; one member of each group; remote
 * errors; durable requests handed out by the responders' consumer group and handed to another
 * member when the first one's socket closes; bad input and scopes.
 */
import { describe, expect, it } from "vitest";
import type { Job } from "../../protocol/groups.ts";
import { REQUEST_HEADERS, type IncomingRequestFrame } from "../../protocol/requests.ts";
import { DEFAULT_TENANT } from "../../workers/middleware/tenant.ts";
import { freshTopic, gatewayFetch, anonymousFetch, issueKey, openSocket, type TestSocket } from "./helpers.ts";

const enc = encodeURIComponent;

/** A socket serving `topic` in `group`. */
async function responder(topic: string, group?: string, extra: Record<string, unknown> = {}, token?: string): Promise<TestSocket> {
  const ws = await openSocket(topic, undefined, token ? { token } : {});
  const id = ws.nextId();
  ws.send({ type: "serve", id, ...(group ? { group } : {}), ...extra });
  const answer = await ws.answer(id);
  expect(answer.type, JSON.stringify(answer)).toBe("serving");
  return ws;
}

function requestsOf(ws: TestSocket): IncomingRequestFrame[] {
  return ws.frames.filter((f): f is IncomingRequestFrame => f.type === "request");
}

/** Run `fn` once for every request this socket gets, as they come. */
function onRequests(ws: TestSocket, fn: (r: IncomingRequestFrame) => void): void {
  let seen = 0;
  ws.ws.addEventListener("message", () => {
    const incoming = requestsOf(ws);
    for (; seen < incoming.length; seen++) fn(incoming[seen]!);
  });
}

/** Answer every request this socket gets with `reply(data)`, as they come. */
function autoReply(ws: TestSocket, reply: (data: unknown) => unknown): void {
  onRequests(ws, (r) => ws.send({ type: "reply", requestId: r.requestId, data: reply(r.data) }));
}

async function request(ws: TestSocket, data: unknown, extra: Record<string, unknown> = {}) {
  const id = ws.nextId();
  ws.send({ type: "request", id, data, ...extra });
  return ws.answer(id);
}

async function httpRequest(topic: string, body: unknown, query = "", token?: string): Promise<Response> {
  const init = { method: "POST", body: JSON.stringify(body) };
  const path = `/v1/topics/${enc(topic)}/request${query}`;
  return token ? anonymousFetch(path, { ...init, headers: { Authorization: `Bearer ${token}` } }) : gatewayFetch(path, init);
}

describe("request/reply over WebSocket frames", () => {
  it("hands a request to a responder and sends its reply back to the requester", async () => {
    const topic = freshTopic("rr");
    const server = await responder(topic);
    autoReply(server, (data) => ({ echo: data }));
    const client = await openSocket(topic);
    expect(await request(client, { q: 1 })).toEqual({ type: "reply", id: 1, data: { echo: { q: 1 } } });
    const incoming = requestsOf(server)[0]!;
    expect(incoming.data).toEqual({ q: 1 });
    expect(incoming.timeoutMs).toBe(30_000);
    // Not stored: the log did not move.
    const info = (await (await gatewayFetch(`/v1/topics/${enc(topic)}`)).json()) as { head: number };
    expect(info.head).toBe(0);
    server.close();
    client.close();
  });

  it("answers no_responders at once when nobody serves the topic, and timeout when the responder stays silent", async () => {
    const topic = freshTopic("rr");
    const client = await openSocket(topic);
    const started = Date.now();
    expect(await request(client, 1, { timeoutMs: 5000 })).toMatchObject({ type: "error", id: 1, code: "no_responders" });
    expect(Date.now() - started).toBeLessThan(5000);
    const silent = await responder(topic);
    expect(await request(client, 2, { timeoutMs: 200 })).toMatchObject({ type: "error", id: 2, code: "timeout" });
    expect(requestsOf(silent)).toHaveLength(1);
    silent.close();
    client.close();
  });

  it("drops a reply that comes after the timeout; it never answers a later request", async () => {
    const topic = freshTopic("rr");
    const server = await responder(topic);
    const client = await openSocket(topic);
    expect(await request(client, "first", { timeoutMs: 150 })).toMatchObject({ code: "timeout" });
    const late = requestsOf(server)[0]!;
    // The second request waits; the late reply to the first comes now.
    const id = client.nextId();
    client.send({ type: "request", id, data: "second", timeoutMs: 5000 });
    await server.until(() => requestsOf(server).length === 2, "the second request");
    server.send({ type: "reply", requestId: late.requestId, data: "late answer to first" });
    const second = requestsOf(server)[1]!;
    expect(second.requestId).not.toBe(late.requestId);
    server.send({ type: "reply", requestId: second.requestId, data: "answer to second" });
    expect(await client.answer(id)).toEqual({ type: "reply", id, data: "answer to second" });
    expect(client.frames.filter((f) => f.type === "reply")).toHaveLength(1);
    // A second reply to an answered request is dropped as well, without an error.
    server.send({ type: "reply", requestId: second.requestId, data: "again" });
    expect(await request(client, "ping", { timeoutMs: 300 })).toMatchObject({ code: "timeout" });
    expect(server.frames.filter((f) => f.type === "error")).toHaveLength(0);
    server.close();
    client.close();
  });

  it("gives each request to one member of a group, round-robin", async () => {
    const topic = freshTopic("rr");
    const members = await Promise.all([0, 1, 2].map(() => responder(topic, "workers")));
    for (const [i, m] of members.entries()) autoReply(m, () => i);
    const client = await openSocket(topic);
    const answers: unknown[] = [];
    for (let n = 0; n < 30; n++) answers.push(((await request(client, n)) as { data: unknown }).data);
    expect(members.map((m) => requestsOf(m).length)).toEqual([10, 10, 10]);
    expect(new Set(answers)).toEqual(new Set([0, 1, 2]));
    // Each request went to exactly one member.
    const seen = members.flatMap((m) => requestsOf(m).map((r) => r.data));
    expect(seen.sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 30 }, (_, n) => n));
    for (const m of members) m.close();
    client.close();
  });

  it("gives a request to one member of each group; the first reply wins", async () => {
    const topic = freshTopic("rr");
    const a = await responder(topic, "a");
    const b = await responder(topic, "b");
    autoReply(a, () => "from a");
    const client = await openSocket(topic);
    expect(await request(client, 1)).toMatchObject({ type: "reply", data: "from a" });
    await b.until(() => requestsOf(b).length === 1, "b's copy");
    b.send({ type: "reply", requestId: requestsOf(b)[0]!.requestId, data: "from b" });
    expect(await request(client, 2, { timeoutMs: 300 })).toMatchObject({ type: "reply", data: "from a" });
    expect(client.frames.filter((f) => f.type === "reply")).toHaveLength(2);
    a.close();
    b.close();
    client.close();
  });

  it("sends a responder's error back as remote_error with its code", async () => {
    const topic = freshTopic("rr");
    const server = await responder(topic);
    onRequests(server, (r) => server.send({ type: "reply", requestId: r.requestId, error: { message: "no such user", code: "E_USER" } }));
    const client = await openSocket(topic);
    expect(await request(client, 1)).toEqual({ type: "error", id: 1, code: "remote_error", message: "no such user", remoteCode: "E_USER" });
    server.close();
    client.close();
  });

  it("answers responder_gone at once when the responder holding the request closes", async () => {
    const topic = freshTopic("rr");
    const server = await responder(topic);
    const client = await openSocket(topic);
    const id = client.nextId();
    client.send({ type: "request", id, data: 1, timeoutMs: 20_000 });
    await server.until(() => requestsOf(server).length === 1, "the request");
    const started = Date.now();
    server.close();
    expect(await client.answer(id)).toMatchObject({ type: "error", id, code: "responder_gone" });
    expect(Date.now() - started).toBeLessThan(5000);
    // And nobody serves any more.
    expect(await request(client, 2)).toMatchObject({ code: "no_responders" });
    client.close();
  });

  it("takes a reply only from the responder the request went to, and drops replies to a requester that left", async () => {
    const topic = freshTopic("rr");
    const a = await responder(topic, "g");
    const b = await responder(topic, "g");
    const client = await openSocket(topic);
    const id = client.nextId();
    client.send({ type: "request", id, data: "for one of them", timeoutMs: 5000 });
    await a.until(() => requestsOf(a).length + requestsOf(b).length === 1, "the request at one member");
    const [holder, other] = requestsOf(a).length === 1 ? [a, b] : [b, a];
    const requestId = requestsOf(holder)[0]!.requestId;
    other.send({ type: "reply", requestId, data: "hijacked" }); // not its request: dropped
    holder.send({ type: "reply", requestId, data: "genuine" });
    expect(await client.answer(id)).toEqual({ type: "reply", id, data: "genuine" });
    // The requester leaves while its next request is in flight; the reply finds nobody, and nobody errs.
    const leaving = await openSocket(topic);
    leaving.send({ type: "request", id: 1, data: "then gone", timeoutMs: 5000 });
    await a.until(() => requestsOf(a).length + requestsOf(b).length === 2, "the second request");
    const second = [...requestsOf(a), ...requestsOf(b)].find((r) => r.data === "then gone")!;
    const secondHolder = requestsOf(a).includes(second) ? a : b;
    leaving.close();
    await new Promise((r) => setTimeout(r, 100));
    secondHolder.send({ type: "reply", requestId: second.requestId, data: "too late" });
    expect(await request(client, "still served", { timeoutMs: 300 })).toMatchObject({ type: "error", code: "timeout" }); // nobody auto-replies here
    expect([...a.frames, ...b.frames, ...client.frames].filter((f) => f.type === "error" && f.code !== "timeout")).toEqual([]);
    expect(client.frames.filter((f) => f.type === "reply")).toHaveLength(1);
    a.close();
    b.close();
    client.close();
  });

  it("takes a batch of requests in one frame and answers each id exactly once in replies frames", async () => {
    const topic = freshTopic("rr");
    const client = await openSocket(topic);
    // Nobody serves: every item is answered, as an error item.
    client.send({
      type: "request",
      requests: [
        { id: 1, data: "a" },
        { id: 2, data: "b" },
      ],
    });
    await client.until(() => client.frames.some((f) => f.type === "replies"), "the replies frame");
    const first = client.frames.find((f) => f.type === "replies")!;
    expect(first).toMatchObject({
      replies: [
        { id: 1, error: { code: "no_responders" } },
        { id: 2, error: { code: "no_responders" } },
      ],
    });
    const a = await responder(topic, "g");
    const b = await responder(topic, "g");
    for (const r of [a, b]) {
      let seen = 0;
      r.ws.addEventListener("message", () => {
        const batches = r.frames.filter((f) => f.type === "requests");
        for (; seen < batches.length; seen++) {
          const items = batches[seen]!.type === "requests" ? batches[seen]!.requests : [];
          // One reply frame for the whole batch: data for all but "fail", which gets an error.
          r.send({
            type: "reply",
            replies: items.map((q) =>
              q.data === "fail" ? { requestId: q.requestId, error: { message: "no" } } : { requestId: q.requestId, data: { echo: q.data } },
            ),
          });
        }
      });
    }
    client.send({
      type: "request",
      requests: [
        { id: 10, data: "p" },
        { id: 11, data: "q" },
        { id: 12, data: "fail" },
        { id: 13, data: "x".repeat(1024 * 1024 + 1) },
        { id: 14, data: "r" },
      ],
    });
    const items = () => client.frames.flatMap((f) => (f.type === "replies" ? f.replies : [])).filter((r) => r.id >= 10);
    await client.until(() => items().length === 5, "five answers");
    expect(items().sort((x, y) => x.id - y.id)).toEqual([
      { id: 10, data: { echo: "p" } },
      { id: 11, data: { echo: "q" } },
      { id: 12, error: { code: "remote_error", message: "no" } },
      { id: 13, error: { code: "message_too_large", message: expect.any(String) } },
      { id: 14, data: { echo: "r" } },
    ]);
    // Four requests went out as one `requests` frame per responder (2 each), not one frame each.
    expect(a.frames.filter((f) => f.type === "requests")).toHaveLength(1);
    expect(b.frames.filter((f) => f.type === "requests")).toHaveLength(1);
    expect(a.frames.filter((f) => f.type === "request")).toHaveLength(0);
    // A frame with both an id and requests is refused whole.
    client.send({ type: "request", id: 20, data: 1, requests: [{ id: 21, data: 1 }] });
    expect(await client.answer(20)).toMatchObject({ type: "error", code: "invalid_field" });
    a.close();
    b.close();
    client.close();
  });

  it("refuses bad input with documented codes and keeps the socket usable", async () => {
    const topic = freshTopic("rr");
    const server = await responder(topic);
    autoReply(server, (d) => d);
    const client = await openSocket(topic);
    expect(await request(client, 1, { timeoutMs: 0 })).toMatchObject({ code: "invalid_field" });
    expect(await request(client, 1, { timeoutMs: 300_001 })).toMatchObject({ code: "invalid_field" });
    expect(await request(client, "x".repeat(1024 * 1024 + 1))).toMatchObject({ code: "message_too_large" });
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = [deep];
    expect(await request(client, deep)).toMatchObject({ code: "too_deep" });
    const serveId = client.nextId();
    client.send({ type: "serve", id: serveId, group: "no spaces" });
    expect(await client.answer(serveId)).toMatchObject({ code: "invalid_field" });
    const again = server.nextId();
    server.send({ type: "serve", id: again });
    expect(await server.answer(again)).toMatchObject({ code: "conflict" });
    // A reply from a socket that does not serve, and a reply with both data and error.
    client.send({ type: "reply", requestId: "r1", data: 1 });
    await client.until(() => client.frames.some((f) => f.type === "error" && f.code === "forbidden" && !("id" in f)), "forbidden reply");
    server.send({ type: "reply", requestId: "r1", data: 1, error: { message: "x" } });
    await server.until(() => server.frames.some((f) => f.type === "error" && f.code === "invalid_field"), "invalid reply");
    expect(await request(client, { still: "works" })).toMatchObject({ type: "reply", data: { still: "works" } });
    server.close();
    client.close();
  });

  it("needs publish to request, subscribe to serve and consume to serve durable requests", async () => {
    const topic = freshTopic("rr");
    const subscriber = await issueKey(DEFAULT_TENANT, [`subscribe:${topic}`]);
    const publisher = await issueKey(DEFAULT_TENANT, [`publish:${topic}`]);
    const onlySub = await openSocket(topic, undefined, { token: subscriber.key });
    expect(await request(onlySub, 1)).toMatchObject({ code: "forbidden" });
    const onlyPub = await openSocket(topic, undefined, { token: publisher.key });
    const id = onlyPub.nextId();
    onlyPub.send({ type: "serve", id });
    expect(await onlyPub.answer(id)).toMatchObject({ code: "forbidden" });
    const durableId = onlySub.nextId();
    onlySub.send({ type: "serve", id: durableId, durable: true });
    expect(await onlySub.answer(durableId)).toMatchObject({ code: "forbidden" });
    expect((await httpRequest(topic, { data: 1 }, "", subscriber.key)).status).toBe(403);
    onlySub.close();
    onlyPub.close();
  });
});

describe("request/reply over HTTP", () => {
  it("waits for the reply; no_responders 503, timeout 504, remote_error 502, bad input 400", async () => {
    const topic = freshTopic("rr");
    let res = await httpRequest(topic, { data: 1 });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("no_responders");
    const server = await responder(topic);
    autoReply(server, (d) => ({ got: d }));
    res = await httpRequest(topic, { data: { a: 1 } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { got: { a: 1 } } });
    server.close();
    await new Promise((r) => setTimeout(r, 50));

    const silent = await responder(topic);
    res = await httpRequest(topic, { data: 1 }, "?timeoutMs=200");
    expect(res.status).toBe(504);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("timeout");
    onRequests(silent, (r) => {
      if (r.data === 2) silent.send({ type: "reply", requestId: r.requestId, error: { message: "boom" } });
    });
    res = await httpRequest(topic, { data: 2, timeoutMs: 5000 });
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({ error: { code: "remote_error", message: "boom" } });

    for (const [body, query] of [
      [{ data: 1, timeoutMs: 0 }, ""],
      [{ data: 1, extra: true }, ""],
      [{}, ""],
      [{ data: 1 }, "?timeoutMs=abc"],
    ] as const) {
      res = await httpRequest(topic, body, query);
      expect(res.status, JSON.stringify(body) + query).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_field");
    }
    silent.close();
  });
});

describe("durable requests", () => {
  /** A socket that consumes `group` and serves it durably. */
  async function durableResponder(topic: string, group: string): Promise<TestSocket> {
    const ws = await openSocket(topic);
    const cid = ws.nextId();
    ws.send({ type: "consume", id: cid, group, create: { start: "latest" } });
    expect((await ws.answer(cid)).type).toBe("consuming");
    const sid = ws.nextId();
    ws.send({ type: "serve", id: sid, group, durable: true });
    expect((await ws.answer(sid)).type).toBe("serving");
    return ws;
  }

  function jobsOf(ws: TestSocket): Job[] {
    return ws.frames.flatMap((f) => (f.type === "jobs" ? f.jobs : []));
  }

  it("stores the request, hands it to another member when the first one's socket closes, and routes that reply back", async () => {
    const topic = freshTopic("rr");
    const client = await openSocket(topic);
    expect(await request(client, 1, { durable: true })).toMatchObject({ code: "no_responders" });
    const first = await durableResponder(topic, "svc");
    const id = client.nextId();
    client.send({ type: "request", id, data: { job: 7 }, durable: true, timeoutMs: 20_000 });
    await first.until(() => jobsOf(first).length === 1, "the stored request as a job");
    const job = jobsOf(first)[0]!;
    expect(job.data).toEqual({ job: 7 });
    const requestId = job.headers![REQUEST_HEADERS.id]!;
    expect(Number(job.headers![REQUEST_HEADERS.deadline])).toBeGreaterThan(Date.now());
    const second = await durableResponder(topic, "svc");
    first.close(); // crashed before replying: the group gives the job to the other member
    await second.until(() => jobsOf(second).length === 1, "the request handed to the second member");
    expect(jobsOf(second)[0]!.headers![REQUEST_HEADERS.id]).toBe(requestId);
    second.send({ type: "reply", requestId, data: { done: 7 } });
    const settleId = second.nextId();
    second.send({ type: "settle", id: settleId, op: "ack", jobs: [{ offset: job.offset, delivery: jobsOf(second)[0]!.delivery }] });
    expect(await client.answer(id)).toEqual({ type: "reply", id, data: { done: 7 } });
    expect((await second.answer(settleId)).type).toBe("settled");
    // The request is in the log, as a message.
    const info = (await (await gatewayFetch(`/v1/topics/${enc(topic)}`)).json()) as { head: number };
    expect(info.head).toBe(1);
    second.close();
    client.close();
  });

  it("works from HTTP too", async () => {
    const topic = freshTopic("rr");
    const server = await durableResponder(topic, "svc");
    let seen = 0;
    server.ws.addEventListener("message", () => {
      const jobs = jobsOf(server);
      for (; seen < jobs.length; seen++) {
        const job = jobs[seen]!;
        server.send({ type: "reply", requestId: job.headers![REQUEST_HEADERS.id], data: { twice: (job.data as number) * 2 } });
        server.send({ type: "settle", id: server.nextId(), op: "ack", jobs: [{ offset: job.offset, delivery: job.delivery }] });
      }
    });
    const res = await httpRequest(topic, { data: 21, durable: true, timeoutMs: 10_000 });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toEqual({ data: { twice: 42 } });
    server.close();
  });
});
