/**
 * The tenant's Directory (objects/directory.ts) through the gateway: listing topics by prefix,
 * pattern and page; what a credential may see; deleting a topic (its sockets closed with 4004, its
 * storage gone, a fresh topic on the next write); the created/deleted event feed.
 */
import { describe, expect, it } from "vitest";
import { directoryObjectName } from "../../protocol/topic-address.ts";
import { bindings, freshTopic, gatewayFetch, issueKey, anonymousFetch, numbered, openSocket } from "./helpers.ts";

interface Page {
  topics: { name: string; head: number; messages: number; createdAt: number }[];
  cursor: string | null;
}

async function publish(topic: string, count: number): Promise<void> {
  const res = await gatewayFetch(`/v1/topics/${encodeURIComponent(topic)}/messages`, { method: "POST", body: JSON.stringify({ messages: numbered(count) }) });
  expect(res.status).toBe(201);
}

async function list(query: string, token?: string): Promise<Page> {
  const res = token
    ? await anonymousFetch(`/v1/topics?${query}`, { headers: { Authorization: `Bearer ${token}` } })
    : await gatewayFetch(`/v1/topics?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Page;
}

describe("listing topics", () => {
  it("lists by prefix and pattern, a page at a time, in name order", async () => {
    const root = freshTopic("dir").replaceAll(".", "-");
    const names = [`${root}.a.inbox`, `${root}.b.inbox`, `${root}.b.outbox`, `${root}.c.inbox`, `${root}.c/deep.inbox`];
    for (const n of names) await publish(n, 1);
    expect((await list(`prefix=${root}.`)).topics.map((t) => t.name)).toEqual([...names].sort());
    expect((await list(`pattern=${encodeURIComponent(`${root}.*.inbox`)}`)).topics.map((t) => t.name)).toEqual([
      `${root}.a.inbox`,
      `${root}.b.inbox`,
      `${root}.c.inbox`,
    ]);
    // Pages of 2 follow the cursor to the end, each name once.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await list(`prefix=${root}.&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expect(page.topics.length).toBeLessThanOrEqual(2);
      seen.push(...page.topics.map((t) => t.name));
      cursor = page.cursor;
    } while (cursor !== null);
    expect(seen).toEqual([...names].sort());
    const entry = (await list(`prefix=${root}.a.`)).topics[0]!;
    expect(entry).toMatchObject({ name: `${root}.a.inbox` });
    expect(entry.createdAt).toBeGreaterThan(0);
  });

  it("shows each credential only the topics it may see, and refuses bad queries", async () => {
    const root = freshTopic("vis").replaceAll(".", "-");
    await publish(`${root}.mine.x`, 1);
    await publish(`${root}.theirs.x`, 1);
    const narrow = await issueKey("default", [`subscribe:${root}.mine.>`]);
    expect((await list(`prefix=${root}.`, narrow.key)).topics.map((t) => t.name)).toEqual([`${root}.mine.x`]);
    for (const bad of ["limit=0", "limit=1001", "limit=x", "pattern=a..b", `pattern=${encodeURIComponent("a.>.b")}`]) {
      const res = await gatewayFetch(`/v1/topics?${bad}`);
      expect({ bad, status: res.status }).toEqual({ bad, status: 400 });
    }
  });

  it("reports a topic's stats within a few seconds of its writes", async () => {
    const topic = freshTopic("stats");
    await publish(topic, 1);
    await publish(topic, 2);
    const deadline = Date.now() + 15_000;
    let head = -1;
    while (Date.now() < deadline && head !== 3) {
      head = (await list(`prefix=${topic}`)).topics[0]?.head ?? -1;
      if (head !== 3) await new Promise((r) => setTimeout(r, 250));
    }
    expect(head).toBe(3);
  });
});

describe("deleting a topic", () => {
  it("closes its sockets with 4004, removes its messages, and a later publish starts a fresh topic", async () => {
    const topic = freshTopic("del");
    await publish(topic, 5);
    const sub = await openSocket(topic);
    expect(await sub.subscribe("earliest")).toMatchObject({ type: "subscribed" });
    await sub.waitDelivered(5);
    const plain = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0`);
    await plain.frame("welcome");

    const res = await gatewayFetch(`/v1/topics/${topic}`, { method: "DELETE" });
    expect(await res.json()).toEqual({ topic, deleted: true, closedSockets: 2 });
    for (const s of [sub, plain]) {
      await s.until(() => s.closed !== null, "the deletion close");
      expect(s.closed?.code).toBe(4004);
      expect(s.frames.some((f) => f.type === "error" && f.code === "topic_deleted")).toBe(true);
    }
    expect((await list(`prefix=${topic}`)).topics).toEqual([]);
    expect(await (await gatewayFetch(`/v1/topics/${topic}/messages?from=0`)).json()).toEqual({ messages: [], next: 0, head: 0, earliest: 0 });
    expect((await gatewayFetch(`/v1/topics/${topic}`, { method: "DELETE" })).status).toBe(404);

    // Re-created by the next write: offsets from 0, listed again, readable.
    const again = await openSocket(topic);
    expect(await again.publish(numbered(2, 100))).toMatchObject({ type: "ack", offset: 0, count: 2 });
    const read = (await (await gatewayFetch(`/v1/topics/${topic}/messages?from=0`)).json()) as { messages: { data: { n: number } }[]; head: number };
    expect(read.messages.map((m) => m.data.n)).toEqual([100, 101]);
    expect((await list(`prefix=${topic}`)).topics.map((t) => t.name)).toEqual([topic]);
    again.close();
  });

  it("needs admin on the topic", async () => {
    const topic = freshTopic("del");
    await publish(topic, 1);
    const writer = await issueKey("default", ["publish:>", "subscribe:>"]);
    const res = await anonymousFetch(`/v1/topics/${topic}`, { method: "DELETE", headers: { Authorization: `Bearer ${writer.key}` } });
    expect(res.status).toBe(403);
    expect((await list(`prefix=${topic}`)).topics.map((t) => t.head)).toEqual([1]);
  });

  it("feeds created and deleted events, in order, to followers", async () => {
    const topic = freshTopic("feed");
    const directory = bindings.DIRECTORY.get(bindings.DIRECTORY.idFromName(directoryObjectName("default")));
    const start = (await directory.events(0, 1)).first - 1;
    await publish(topic, 1);
    await gatewayFetch(`/v1/topics/${topic}`, { method: "DELETE" });
    await publish(topic, 1);
    let after = start;
    const mine: string[] = [];
    for (;;) {
      const { events } = await directory.events(after, 1000);
      if (events.length === 0) break;
      for (const e of events) if (e.topic === topic) mine.push(e.kind);
      after = events.at(-1)!.seq;
    }
    expect(mine).toEqual(["created", "deleted", "created"]);
  });
});
