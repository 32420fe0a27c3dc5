/**
 * Consumer groups (objects/groups/, docs/groups.md) through the real gateway and topic objects:
 * work handed to one member at a time over WebSocket and HTTP, acks, redelivery on timeout, nack
 * and member loss, dead letters and their replay, ordered-per-key, priority lanes, TTL, the admin
 * routes, bad input, the consume scope, and state that survives eviction.
 */
import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { GroupInfo, Job } from "../../protocol/groups.ts";
import { DEAD_LETTER_HEADERS } from "../../protocol/groups.ts";
import { DEFAULT_TENANT } from "../../workers/middleware/tenant.ts";
import { topicStub } from "../../workers/topic-stub.ts";
import { anonymousFetch, bindings, freshTopic, gatewayFetch, issueKey, numbered, openSocket, type TestSocket } from "./helpers.ts";

const enc = encodeURIComponent;

async function publish(topic: string, messages: unknown[]): Promise<void> {
  const res = await gatewayFetch(`/v1/topics/${enc(topic)}/messages`, { method: "POST", body: JSON.stringify({ messages }) });
  expect(res.status, await res.clone().text()).toBe(201);
}

async function groupPost(topic: string, group: string, action: string, body: unknown, token?: string): Promise<Response> {
  const init = { method: "POST", body: JSON.stringify(body) };
  const path = `/v1/topics/${enc(topic)}/groups/${group}/${action}`;
  return token ? anonymousFetch(path, { ...init, headers: { Authorization: `Bearer ${token}` } }) : gatewayFetch(path, init);
}

async function fetchJobs(topic: string, group: string, member: string, extra: Record<string, unknown> = {}): Promise<Job[]> {
  const res = await groupPost(topic, group, "fetch", { member, ...extra });
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { jobs: Job[] }).jobs;
}

async function settle(topic: string, group: string, member: string, op: string, jobs: Job[], extra: Record<string, unknown> = {}): Promise<Response> {
  return groupPost(topic, group, "settle", { member, op, jobs: jobs.map((j) => ({ offset: j.offset, delivery: j.delivery })), ...extra });
}

async function info(topic: string, group: string): Promise<GroupInfo> {
  const res = await gatewayFetch(`/v1/topics/${enc(topic)}/groups/${group}`);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as GroupInfo;
}

async function createGroup(topic: string, group: string, settings: Record<string, unknown>): Promise<Response> {
  return gatewayFetch(`/v1/topics/${enc(topic)}/groups/${group}`, { method: "PUT", body: JSON.stringify(settings) });
}

/** A socket that joined `group` as a member. */
async function consumer(topic: string, group: string, options: Record<string, unknown> = {}): Promise<TestSocket> {
  const ws = await openSocket(topic);
  const id = ws.nextId();
  ws.send({ type: "consume", id, group, ...options });
  const answer = await ws.answer(id);
  expect(answer.type, JSON.stringify(answer)).toBe("consuming");
  return ws;
}

function jobsOf(ws: TestSocket): Job[] {
  const out: Job[] = [];
  for (const f of ws.frames) if (f.type === "jobs") out.push(...f.jobs);
  return out;
}

async function settleWs(ws: TestSocket, op: string, jobs: Job[], extra: Record<string, unknown> = {}) {
  const id = ws.nextId();
  ws.send({ type: "settle", id, op, jobs: jobs.map((j) => ({ offset: j.offset, delivery: j.delivery })), ...extra });
  return ws.answer(id);
}

describe("work distribution over WebSocket", () => {
  it("hands each message to one member; acked messages are never delivered again", async () => {
    const topic = freshTopic("grp");
    const members = [
      await consumer(topic, "workers", { create: { start: "earliest" }, maxAckPending: 50 }),
      await consumer(topic, "workers", { maxAckPending: 50 }),
      await consumer(topic, "workers", { maxAckPending: 50 }),
    ];
    await publish(topic, numbered(300));
    const acked = new Set<number>();
    // Each member acks what it gets until all 300 are acked.
    while (acked.size < 300) {
      for (const ws of members) {
        const fresh = jobsOf(ws).filter((j) => !acked.has(j.offset));
        if (fresh.length === 0) continue;
        const answer = await settleWs(ws, "ack", fresh);
        expect(answer).toMatchObject({ type: "settled", count: fresh.length });
        for (const j of fresh) acked.add(j.offset);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const all = members.flatMap(jobsOf);
    expect(all.length).toBe(300); // no message to two members, none twice
    expect(new Set(all.map((j) => j.offset)).size).toBe(300);
    expect(all.every((j) => j.delivery === 1)).toBe(true);
    expect(members.every((ws) => jobsOf(ws).length > 0)).toBe(true);
    const state = await info(topic, "workers");
    expect(state).toMatchObject({ ackFloor: 300, head: 300, lag: 0, pendingCount: 0 });
    expect(state.stats).toMatchObject({ delivered: 300, acked: 300, redelivered: 0 });
    for (const ws of members) ws.close();
  });

  it("never gives a member more than its maxAckPending unsettled jobs", async () => {
    const topic = freshTopic("grp");
    const ws = await consumer(topic, "g", { create: { start: "earliest" }, maxAckPending: 7 });
    await publish(topic, numbered(30));
    await ws.until(() => jobsOf(ws).length >= 7, "7 jobs");
    await new Promise((r) => setTimeout(r, 100));
    expect(jobsOf(ws).length).toBe(7);
    await settleWs(ws, "ack", jobsOf(ws).slice(0, 3));
    await ws.until(() => jobsOf(ws).length >= 10, "3 more jobs");
    await new Promise((r) => setTimeout(r, 100));
    expect(jobsOf(ws).length).toBe(10);
    ws.close();
  });

  it("delivers again after the ack wait, after a nack, and at once when the holder's socket closes", async () => {
    const topic = freshTopic("grp");
    const first = await consumer(topic, "g", { create: { start: "earliest", ackWaitMs: 300 } });
    await publish(topic, numbered(3));
    await first.until(() => jobsOf(first).length === 3, "3 jobs");
    const [a, b, c] = jobsOf(first);
    // b: nacked with a delay; c: acked.
    expect(await settleWs(first, "nack", [b!], { delayMs: 50 })).toMatchObject({ type: "settled" });
    expect(await settleWs(first, "ack", [c!])).toMatchObject({ type: "settled" });
    await first.until(() => jobsOf(first).some((j) => j.offset === b!.offset && j.delivery === 2), "redelivery of b after nack");
    // a: not settled → back after 300 ms, to the same (only) member, delivery 2.
    await first.until(() => jobsOf(first).some((j) => j.offset === a!.offset && j.delivery === 2), "redelivery of a after the ack wait", 5000);
    // The holder goes away: another member gets everything it held, at once.
    const second = await consumer(topic, "g");
    first.close();
    await second.until(() => new Set(jobsOf(second).map((j) => j.offset)).size === 2, "a and b at the second member", 5000);
    expect(
      jobsOf(second)
        .map((j) => j.offset)
        .sort(),
    ).toEqual([a!.offset, b!.offset].sort());
    const state = await info(topic, "g");
    expect(state.stats.redelivered).toBeGreaterThanOrEqual(4);
    second.close();
  });

  it("refuses settling what this member does not hold, and changes nothing", async () => {
    const topic = freshTopic("grp");
    const one = await consumer(topic, "g", { create: { start: "earliest" } });
    const two = await consumer(topic, "g");
    await publish(topic, numbered(4));
    await one.until(() => jobsOf(one).length + jobsOf(two).length === 4, "4 jobs");
    const holder = jobsOf(one).length > 0 ? one : two;
    const other = holder === one ? two : one;
    const job = jobsOf(holder)[0]!;
    const cases: [TestSocket, { offset: number; delivery: number }[], string][] = [
      [other, [job], "not_held"], // held by another member
      [holder, [{ offset: job.offset, delivery: 9 }], "not_held"], // wrong delivery
      [holder, [{ offset: 999, delivery: 1 }], "not_held"], // unknown
      [holder, [job, { offset: 999, delivery: 1 }], "not_held"], // one bad job refuses all
      [holder, [job, job], "invalid_field"],
    ];
    for (const [ws, jobs, code] of cases) {
      const id = ws.nextId();
      ws.send({ type: "settle", id, op: "ack", jobs });
      expect(await ws.answer(id)).toMatchObject({ type: "error", code });
    }
    expect((await info(topic, "g")).stats.acked).toBe(0);
    await settleWs(holder, "ack", [job]);
    const id = holder.nextId();
    holder.send({ type: "settle", id, op: "ack", jobs: [{ offset: job.offset, delivery: job.delivery }] });
    expect(await holder.answer(id)).toMatchObject({ type: "error", code: "not_held" }); // already acked
    // A socket that does not consume; a second consume on one socket.
    const plain = await openSocket(topic);
    const pid = plain.nextId();
    plain.send({ type: "settle", id: pid, op: "ack", jobs: [{ offset: 0, delivery: 1 }] });
    expect(await plain.answer(pid)).toMatchObject({ type: "error", code: "not_consuming" });
    const again = one.nextId();
    one.send({ type: "consume", id: again, group: "g" });
    expect(await one.answer(again)).toMatchObject({ type: "error", code: "already_consuming" });
    for (const ws of [one, two, plain]) ws.close();
  });
});

describe("release", () => {
  it("gives jobs back uncounted: the next member gets them at the same delivery", async () => {
    const topic = freshTopic("grp");
    const first = await consumer(topic, "g", { create: { start: "earliest", maxDeliver: 1 } });
    await publish(topic, numbered(3));
    await first.until(() => jobsOf(first).length === 3, "3 jobs");
    expect(await settleWs(first, "release", jobsOf(first))).toMatchObject({ type: "settled", count: 3 });
    first.close();
    const second = await consumer(topic, "g");
    await second.until(() => jobsOf(second).length === 3, "the released jobs");
    // maxDeliver 1: had the release counted, these would be dead letters by now.
    expect(jobsOf(second).map((j) => [j.offset, j.delivery])).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
    expect((await info(topic, "g")).stats).toMatchObject({ delivered: 3, redelivered: 0, deadLettered: 0 });
    second.close();
  });
});

describe("dead letters", () => {
  it("sends a message past maxDeliver to the dead-letter topic once, with the documented headers, and replays it", async () => {
    const topic = freshTopic("grp");
    const dlq = `${topic}.dlq`;
    const ws = await consumer(topic, "g", { create: { start: "earliest", maxDeliver: 2 } });
    await publish(topic, [{ data: { task: "boom" }, key: "k1", headers: { trace: "t-1" } }]);
    await ws.until(() => jobsOf(ws).length === 1, "delivery 1");
    await settleWs(ws, "nack", jobsOf(ws), { reason: "first failure" });
    await ws.until(() => jobsOf(ws).length === 2, "delivery 2");
    await settleWs(ws, "nack", [jobsOf(ws)[1]!], { reason: "second failure" });
    // Dead-lettered: one message in the dead-letter topic.
    let letters: { offset: number; key?: string; data: unknown; headers: Record<string, string> }[] = [];
    for (let i = 0; i < 100 && letters.length === 0; i++) {
      const res = await gatewayFetch(`/v1/topics/${enc(dlq)}/messages?from=0`);
      letters = ((await res.json()) as { messages: typeof letters }).messages;
      if (letters.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ key: "k1", data: { task: "boom" } });
    expect(letters[0]!.headers).toEqual({
      trace: "t-1",
      [DEAD_LETTER_HEADERS.topic]: topic,
      [DEAD_LETTER_HEADERS.offset]: "0",
      [DEAD_LETTER_HEADERS.group]: "g",
      [DEAD_LETTER_HEADERS.deliveries]: "2",
      [DEAD_LETTER_HEADERS.reason]: "max_deliver",
      [DEAD_LETTER_HEADERS.error]: "second failure",
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(jobsOf(ws)).toHaveLength(2); // not delivered a third time
    const state = await info(topic, "g");
    expect(state).toMatchObject({ ackFloor: 1, pendingCount: 0 });
    expect(state.stats.deadLettered).toBe(1);
    // Replay brings it back to the group, delivery count from 1.
    const replay = await groupPost(topic, "g", "replay", {});
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ replayed: 1, read: 1 });
    // Until it is settled again, the floor reported is below it.
    expect(await info(topic, "g")).toMatchObject({ ackFloor: 0, lag: 1 });
    await ws.until(() => jobsOf(ws).length === 3, "the replayed job");
    expect(jobsOf(ws)[2]).toMatchObject({ offset: 0, delivery: 1, data: { task: "boom" } });
    await settleWs(ws, "ack", [jobsOf(ws)[2]!]);
    expect((await info(topic, "g")).pendingCount).toBe(0);
    ws.close();
  });

  it("term dead-letters at once with reason terminated", async () => {
    const topic = freshTopic("grp");
    const ws = await consumer(topic, "g", { create: { start: "earliest", deadLetterTopic: `${topic}.failed` } });
    await publish(topic, numbered(1));
    await ws.until(() => jobsOf(ws).length === 1, "a job");
    await settleWs(ws, "term", jobsOf(ws), { reason: "bad input" });
    let letters: { headers: Record<string, string> }[] = [];
    for (let i = 0; i < 100 && letters.length === 0; i++) {
      letters = ((await (await gatewayFetch(`/v1/topics/${enc(`${topic}.failed`)}/messages?from=0`)).json()) as { messages: typeof letters }).messages;
      if (letters.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(letters[0]!.headers).toMatchObject({
      [DEAD_LETTER_HEADERS.reason]: "terminated",
      [DEAD_LETTER_HEADERS.error]: "bad input",
      [DEAD_LETTER_HEADERS.deliveries]: "1",
    });
    ws.close();
  });
});

describe("ordering, priority and TTL", () => {
  it("ordered by key: one message per key in flight, in offset order, keys in parallel", async () => {
    const topic = freshTopic("grp");
    const members = [await consumer(topic, "g", { create: { start: "earliest", orderedByKey: true } }), await consumer(topic, "g"), await consumer(topic, "g")];
    const messages = [];
    for (let i = 0; i < 60; i++) messages.push({ key: `k${i % 3}`, data: { i } });
    await publish(topic, messages);
    const seen: Job[] = [];
    while (seen.length < 60) {
      // In flight now: at most one per key.
      const inFlight = members.flatMap(jobsOf).filter((j) => !seen.includes(j));
      const keys = inFlight.map((j) => j.key);
      expect(new Set(keys).size).toBe(keys.length);
      for (const ws of members) {
        const mine = jobsOf(ws).filter((j) => !seen.includes(j));
        if (mine.length > 0) {
          await settleWs(ws, "ack", mine);
          seen.push(...mine);
        }
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    for (const k of ["k0", "k1", "k2"]) {
      const order = seen.filter((j) => j.key === k).map((j) => j.offset);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    for (const ws of members) ws.close();
  });

  it("serves a backlog highest priority first, offset order within a lane", async () => {
    const topic = freshTopic("grp");
    const messages = [];
    for (let i = 0; i < 200; i++) messages.push({ data: { i }, priority: [0, 5, 9, 0][i % 4] });
    await publish(topic, messages);
    const ws = await consumer(topic, "g", { create: { start: "earliest" }, maxAckPending: 1 });
    const order: Job[] = [];
    while (order.length < 200) {
      await ws.until(() => jobsOf(ws).length > order.length, "next job");
      const job = jobsOf(ws)[order.length]!;
      order.push(job);
      await settleWs(ws, "ack", [job]);
    }
    const priorities = order.map((j) => j.priority ?? 0);
    expect(priorities).toEqual([...priorities].sort((a, b) => b - a));
    for (const p of [0, 5, 9]) {
      const lane = order.filter((j) => (j.priority ?? 0) === p).map((j) => j.offset);
      expect(lane).toEqual([...lane].sort((a, b) => a - b));
    }
    ws.close();
  });

  it("never delivers expired messages; dead-letters them with reason expired when asked", async () => {
    const topic = freshTopic("grp");
    const now = Date.now();
    await publish(topic, [{ data: "old", expiresAt: now - 1 }, { data: "short", ttlMs: 1 }, { data: "fresh", ttlMs: 60_000 }, { data: "forever" }]);
    await new Promise((r) => setTimeout(r, 10));
    const ws = await consumer(topic, "g", { create: { start: "earliest", deadLetterExpired: true } });
    await ws.until(() => jobsOf(ws).length >= 2, "the live messages");
    await new Promise((r) => setTimeout(r, 100));
    expect(jobsOf(ws).map((j) => j.data)).toEqual(["fresh", "forever"]);
    let letters: { data: unknown; headers: Record<string, string> }[] = [];
    for (let i = 0; i < 100 && letters.length < 2; i++) {
      letters = ((await (await gatewayFetch(`/v1/topics/${enc(`${topic}.dlq`)}/messages?from=0`)).json()) as { messages: typeof letters }).messages;
      if (letters.length < 2) await new Promise((r) => setTimeout(r, 50));
    }
    expect(letters.map((l) => [l.data, l.headers[DEAD_LETTER_HEADERS.reason]])).toEqual([
      ["old", "expired"],
      ["short", "expired"],
    ]);
    // A group that did not ask drops them.
    const quiet = await consumer(topic, "quiet", { create: { start: "earliest", messageTtlMs: 60_000 } });
    await quiet.until(() => jobsOf(quiet).length >= 2, "the live messages");
    expect(jobsOf(quiet).map((j) => j.data)).toEqual(["fresh", "forever"]);
    expect((await info(topic, "quiet")).stats.expired).toBe(2);
    ws.close();
    quiet.close();
  });
});

describe("HTTP pull members and admin routes", () => {
  it("fetches, settles and claims over HTTP", async () => {
    const topic = freshTopic("grp");
    expect((await createGroup(topic, "pull", { start: "earliest", ackWaitMs: 60_000 })).status).toBe(201);
    expect((await createGroup(topic, "pull", { start: "earliest", ackWaitMs: 60_000 })).status).toBe(200);
    const conflict = await createGroup(topic, "pull", { ackWaitMs: 1000 });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ error: { code: "conflict" } });
    // A fetch waits for the first job.
    const waiting = fetchJobs(topic, "pull", "w1", { max: 5, waitMs: 5000 });
    await new Promise((r) => setTimeout(r, 100));
    await publish(topic, numbered(8));
    const got = await waiting;
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(got.length).toBeLessThanOrEqual(5);
    const more = await fetchJobs(topic, "pull", "w2", { max: 100 });
    expect(new Set([...got, ...more].map((j) => j.offset)).size).toBe(got.length + more.length);
    expect((await settle(topic, "pull", "w1", "ack", got)).status).toBe(200);
    // w2 disappears: after minIdleMs its jobs can be claimed by w3.
    const claimed = await groupPost(topic, "pull", "claim", { member: "w3", minIdleMs: 0 });
    const claimedJobs = ((await claimed.json()) as { jobs: Job[] }).jobs;
    expect(claimedJobs.map((j) => j.offset).sort()).toEqual(more.map((j) => j.offset).sort());
    expect(claimedJobs.every((j) => j.delivery === 2)).toBe(true);
    expect((await settle(topic, "pull", "w2", "ack", more)).status).toBe(409); // w2 no longer holds them
    expect((await settle(topic, "pull", "w3", "ack", claimedJobs)).status).toBe(200);
    const rest = await fetchJobs(topic, "pull", "w3", { max: 100 });
    if (rest.length > 0) expect((await settle(topic, "pull", "w3", "ack", rest)).status).toBe(200);
    expect(got.length + more.length + rest.length).toBe(8);
    const state = await info(topic, "pull");
    expect(state).toMatchObject({ ackFloor: 8, lag: 0, pendingCount: 0 });
    // list, reset, delete
    const listed = (await (await gatewayFetch(`/v1/topics/${enc(topic)}/groups`)).json()) as { groups: GroupInfo[] };
    expect(listed.groups.map((g) => g.group)).toEqual(["pull"]);
    const reset = await groupPost(topic, "pull", "reset", { to: 2 });
    expect(await reset.json()).toMatchObject({ ackFloor: 2, lag: 6 });
    expect((await fetchJobs(topic, "pull", "w4", { max: 100 })).map((j) => j.offset)).toEqual([2, 3, 4, 5, 6, 7]);
    expect((await gatewayFetch(`/v1/topics/${enc(topic)}/groups/pull`, { method: "DELETE" })).status).toBe(200);
    const gone = await gatewayFetch(`/v1/topics/${enc(topic)}/groups/pull`);
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ error: { code: "group_not_found" } });
  });

  it("refuses bad input with stable codes and stores nothing", async () => {
    const topic = freshTopic("grp");
    await publish(topic, numbered(1));
    const bad: [string, Record<string, unknown>, string][] = [
      ["bad name!", {}, "invalid_field"],
      ["g", { ackWaitMs: -1 }, "invalid_field"],
      ["g", { ackWaitMs: 10 ** 12 }, "invalid_field"],
      ["g", { maxDeliver: 0 }, "invalid_field"],
      ["g", { deadLetterTopic: topic }, "invalid_field"], // loops into itself
      ["g", { deadLetterTopic: "../x" }, "invalid_field"],
      ["g", { unknownSetting: 1 }, "invalid_field"],
      ["g", { backoffMs: [-5] }, "invalid_field"],
    ];
    for (const [name, settings, code] of bad) {
      const res = await gatewayFetch(`/v1/topics/${enc(topic)}/groups/${enc(name)}`, { method: "PUT", body: JSON.stringify(settings) });
      expect(res.status, JSON.stringify(settings)).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code } });
    }
    for (const body of [
      { member: "m", op: "ack", jobs: [] },
      { member: "m", op: "maybe", jobs: [{ offset: 0, delivery: 1 }] },
      { member: "bad member", op: "ack", jobs: [{ offset: 0, delivery: 1 }] },
    ]) {
      const res = await groupPost(topic, "g", "settle", body);
      expect(res.status).toBe(400);
    }
    expect((await groupPost(topic, "nope", "settle", { member: "m", op: "ack", jobs: [{ offset: 0, delivery: 1 }] })).status).toBe(404);
    expect((await groupPost(topic, "g", "fetch", { member: "m", waitMs: 10 ** 9 })).status).toBe(400);
    const listed = (await (await gatewayFetch(`/v1/topics/${enc(topic)}/groups`)).json()) as { groups: unknown[] };
    expect(listed.groups).toEqual([]);
    // A consume frame with bad settings is refused with the frame's id.
    const ws = await openSocket(topic);
    const id = ws.nextId();
    ws.send({ type: "consume", id, group: "g", create: { ackWaitMs: 5 } });
    expect(await ws.answer(id)).toMatchObject({ type: "error", code: "invalid_field" });
    ws.close();
  });

  it("needs the consume scope to take work, admin to delete or reset", async () => {
    const topic = freshTopic("grp");
    const reader = await issueKey(DEFAULT_TENANT, [`subscribe:${topic}`, `publish:${topic}`]);
    const worker = await issueKey(DEFAULT_TENANT, [`consume:${topic}`]);
    expect((await groupPost(topic, "g", "fetch", { member: "m" }, reader.key)).status).toBe(403);
    expect((await groupPost(topic, "g", "fetch", { member: "m", create: { start: "earliest" } }, worker.key)).status).toBe(200);
    expect((await groupPost(topic, "g", "reset", { to: 0 }, worker.key)).status).toBe(403);
    const del = await anonymousFetch(`/v1/topics/${enc(topic)}/groups/g`, { method: "DELETE", headers: { Authorization: `Bearer ${worker.key}` } });
    expect(del.status).toBe(403);
    // Over WebSocket: a socket opened with subscribe only may not consume.
    const ws = await openSocket(topic, undefined, { token: reader.key });
    const id = ws.nextId();
    ws.send({ type: "consume", id, group: "g" });
    expect(await ws.answer(id)).toMatchObject({ type: "error", code: "forbidden" });
    ws.close();
  });
});

describe("durability", () => {
  it("keeps acks, pending jobs and delivery counts across eviction; a hibernated member keeps what it holds", async () => {
    const topic = freshTopic("grp");
    const ws = await consumer(topic, "g", { create: { start: "earliest", ackWaitMs: 60_000 }, maxAckPending: 5 });
    await publish(topic, numbered(10));
    await ws.until(() => jobsOf(ws).length === 5, "5 jobs");
    await settleWs(ws, "ack", jobsOf(ws).slice(0, 2)); // 0, 1 acked; 2, 3, 4 held
    await ws.until(() => jobsOf(ws).length === 7, "2 more jobs");
    await evictDurableObject(topicStub(bindings, DEFAULT_TENANT, topic));
    const state = await info(topic, "g");
    expect(state).toMatchObject({ ackFloor: 2, pendingCount: 5 });
    expect(state.members).toHaveLength(1);
    // The member still holds its jobs: it can ack them after the wake.
    const held = jobsOf(ws).slice(2);
    expect(await settleWs(ws, "ack", held)).toMatchObject({ type: "settled", count: 5 });
    await ws.until(() => jobsOf(ws).length === 10, "the last 3 jobs");
    await settleWs(ws, "ack", jobsOf(ws).slice(7));
    expect(await info(topic, "g")).toMatchObject({ ackFloor: 10, pendingCount: 0 });
    expect(new Set(jobsOf(ws).map((j) => j.offset)).size).toBe(10);
    ws.close();
  });
});
