/**
 * Pattern subscriptions inside workerd (docs/patterns.md, decision 030): real pattern sockets
 * through the gateway to real PatternFeed objects, which open real sockets to real topics.
 */
import { describe, expect, it } from "vitest";
import type { DeliveredMessage } from "../../protocol/frames.ts";
import { freshTopic, gatewayFetch, issueKey, numbered, openSocket, type TestSocket } from "./helpers.ts";

interface PatternMessages {
  type: "messages";
  topic: string;
  messages: DeliveredMessage[];
}

/** Every message a pattern socket received, as `topic@offset`. */
function received(s: TestSocket): string[] {
  return s.raw
    .map((t) => JSON.parse(t) as { type: string })
    .filter((f): f is PatternMessages => f.type === "messages")
    .flatMap((f) => f.messages.map((m) => `${f.topic}@${m.offset}`));
}

/** Frames of one type a pattern socket received, parsed. */
function framesOf<T>(s: TestSocket, type: string): T[] {
  return s.raw.map((t) => JSON.parse(t) as { type: string }).filter((f) => f.type === type) as T[];
}

async function publish(topic: string, count: number, from = 0, token?: string): Promise<void> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", headers, body: JSON.stringify({ messages: numbered(count, from) }) });
  expect(res.status).toBe(201);
}

/** Open a pattern socket and subscribe; resolves with the `matching` frame. */
async function subscribePattern(
  pattern: string,
  frame: Record<string, unknown> = {},
  token?: string,
): Promise<{ s: TestSocket; matching: { startedAt: number; topics: number } }> {
  const s = await openSocket(pattern, `/v1/patterns/ws?pattern=${encodeURIComponent(pattern)}`, token ? { token } : {});
  await s.until(() => s.raw.some((t) => t.includes('"welcome"')), "welcome");
  s.send({ type: "subscribe", id: 1, ...frame });
  await s.until(() => framesOf(s, "matching").length > 0 || s.closed !== null, "matching");
  const matching = framesOf<{ startedAt: number; topics: number }>(s, "matching")[0];
  if (!matching) throw new Error(`no matching frame: ${s.raw.join(" ")}`);
  return { s, matching };
}

describe("pattern subscriptions", () => {
  it("marks the frames of a memory topic skips: true (its offsets may jump), and no other topic's", async () => {
    const root = freshTopic("pat");
    const res = await gatewayFetch(`/v1/topics/${root}.m`, { method: "PATCH", body: JSON.stringify({ durability: "memory" }) });
    expect(res.status).toBe(200);
    await publish(`${root}.m`, 2);
    await publish(`${root}.s`, 2);
    const { s } = await subscribePattern(`${root}.*`, { from: "earliest" });
    await s.until(() => received(s).length === 4, "both topics' messages");
    const frames = framesOf<{ topic: string; skips?: boolean }>(s, "messages");
    expect(frames.filter((f) => f.topic === `${root}.m`).every((f) => f.skips === true)).toBe(true);
    expect(frames.filter((f) => f.topic === `${root}.s`).every((f) => f.skips === undefined)).toBe(true);
  });

  it("delivers every matching topic, created before and after subscribing, each message with its topic and offset", async () => {
    const root = freshTopic("pat");
    const before = `${root}.a.events`;
    const other = `${root}.a.logs`;
    await publish(before, 3);
    await publish(other, 2);
    const { s, matching } = await subscribePattern(`${root}.*.events`, { from: "earliest" });
    expect(matching.topics).toBe(1);
    await s.until(() => received(s).length === 3, "the earlier topic's messages");
    const after = `${root}.b.events`;
    await publish(after, 2);
    await publish(before, 1, 3);
    await s.until(() => received(s).length === 6, "the new topic's messages");
    expect(received(s).sort()).toEqual([`${after}@0`, `${after}@1`, `${before}@0`, `${before}@1`, `${before}@2`, `${before}@3`].sort());
    // Per topic, in offset order.
    const ofBefore = received(s).filter((r) => r.startsWith(before));
    expect(ofBefore).toEqual([0, 1, 2, 3].map((o) => `${before}@${o}`));
    expect(received(s).some((r) => r.startsWith(other))).toBe(false);
    s.close();
  });

  it("starts at latest by default: only what is published after `matching`", async () => {
    const root = freshTopic("pat");
    await publish(`${root}.x`, 5);
    const { s } = await subscribePattern(`${root}.>`);
    await publish(`${root}.x`, 2, 5);
    await s.until(() => received(s).length === 2, "the new messages");
    expect(received(s)).toEqual([`${root}.x@5`, `${root}.x@6`]);
    s.close();
  });

  it("matches only topics the credential may subscribe to, in its own tenant", async () => {
    const root = freshTopic("pat");
    const tenant = `tp${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const narrow = await issueKey(tenant, [`subscribe:${root}.a.*`, `publish:${root}.>`]);
    const writer = await issueKey(tenant, [`publish:${root}.>`]);
    await publish(`${root}.a.one`, 1, 0, writer.key);
    await publish(`${root}.b.one`, 1, 0, writer.key);
    // The same names in the default tenant: never seen by the other tenant's subscription.
    await publish(`${root}.a.one`, 4);
    const { s, matching } = await subscribePattern(`${root}.>`, { from: "earliest" }, narrow.key);
    expect(matching.topics).toBe(1);
    await publish(`${root}.a.two`, 1, 0, writer.key);
    await publish(`${root}.b.two`, 1, 0, writer.key);
    await s.until(() => received(s).length === 2, "the allowed topics' messages");
    await new Promise((r) => setTimeout(r, 200));
    expect(received(s).sort()).toEqual([`${root}.a.one@0`, `${root}.a.two@0`]);
    s.close();
  });

  it("resumes each topic at its cursor, and starts topics without one as they would have then", async () => {
    const root = freshTopic("pat");
    await publish(`${root}.a`, 2);
    await publish(`${root}.b`, 2);
    const first = await subscribePattern(`${root}.*`);
    await publish(`${root}.a`, 3, 2);
    await first.s.until(() => received(first.s).length === 3, "a's messages");
    first.s.close();
    // While away: more on a, the first messages of b since the start, and a new topic c.
    await publish(`${root}.a`, 2, 5);
    await publish(`${root}.b`, 1, 2);
    await publish(`${root}.c`, 2);
    const { s } = await subscribePattern(`${root}.*`, { cursors: { [`${root}.a`]: 5 }, startedAt: first.matching.startedAt });
    await s.until(() => received(s).length === 5, "what was missed");
    expect(received(s).sort()).toEqual([`${root}.a@5`, `${root}.a@6`, `${root}.b@2`, `${root}.c@0`, `${root}.c@1`].sort());
    s.close();
  });

  it("sends no more than the credit granted, over all topics, and the rest after more credit; a stalled one slows nobody", async () => {
    const root = freshTopic("pat");
    const { s } = await subscribePattern(`${root}.*`, { credit: 5 });
    await publish(`${root}.a`, 4);
    await publish(`${root}.b`, 4);
    await s.until(() => received(s).length === 5, "five messages");
    // Stalled at 5: a direct subscriber of the same topic still gets everything published.
    const direct = await openSocket(`${root}.a`);
    direct.autoCredit = true;
    direct.send({ type: "subscribe", id: 1, from: "earliest", credit: 100 });
    await publish(`${root}.a`, 200, 4);
    await direct.until(
      () => direct.frames.filter((f) => f.type === "messages").flatMap((f) => (f.type === "messages" ? f.messages : [])).length === 204,
      "the direct subscriber's messages",
    );
    direct.close();
    expect(received(s)).toHaveLength(5);
    s.send({ type: "credit", messages: 10 });
    await s.until(() => received(s).length === 15, "ten more");
    await new Promise((r) => setTimeout(r, 200));
    expect(received(s)).toHaveLength(15);
    s.send({ type: "credit", messages: 1000 });
    await s.until(() => received(s).length === 208, "the rest");
    const per = (t: string) => received(s).filter((r) => r.startsWith(`${t}@`));
    expect(per(`${root}.a`)).toEqual(Array.from({ length: 204 }, (_, o) => `${root}.a@${o}`));
    expect(per(`${root}.b`)).toEqual([0, 1, 2, 3].map((o) => `${root}.b@${o}`));
    s.close();
  });

  it("tells when a topic is deleted, and delivers it from its first message when it is created again", async () => {
    const root = freshTopic("pat");
    await publish(`${root}.a`, 2);
    const { s } = await subscribePattern(`${root}.*`, { from: "earliest" });
    await s.until(() => received(s).length === 2, "the messages");
    expect((await gatewayFetch(`/v1/topics/${root}.a`, { method: "DELETE" })).status).toBe(200);
    await s.until(() => framesOf(s, "unmatched").length === 1, "unmatched");
    expect(framesOf(s, "unmatched")[0]).toMatchObject({ topic: `${root}.a`, code: "topic_deleted" });
    await publish(`${root}.a`, 1, 100);
    await s.until(() => received(s).length === 3, "the new topic's message");
    expect(received(s)[2]).toBe(`${root}.a@0`);
    s.close();
  });

  it("refuses a pattern that matches more topics than a subscription follows, and follows no more than that", async () => {
    // vitest.workers.config.ts sets PATTERN_MAX_TOPICS to 5 for this.
    const root = freshTopic("pat");
    for (let i = 0; i < 6; i++) await publish(`${root}.big.t${i}`, 1);
    const s = await openSocket("x", `/v1/patterns/ws?pattern=${root}.big.*`);
    s.send({ type: "subscribe", id: 3 });
    await s.until(() => framesOf(s, "error").length === 1, "the refusal");
    expect(framesOf(s, "error")[0]).toMatchObject({ id: 3, code: "too_many_topics" });
    await s.until(() => s.closed !== null, "close");
    // Five at the start, then a sixth created: not followed, and said so.
    for (let i = 0; i < 5; i++) await publish(`${root}.few.t${i}`, 1);
    const { s: few, matching } = await subscribePattern(`${root}.few.*`);
    expect(matching.topics).toBe(5);
    await publish(`${root}.few.t5`, 1);
    await few.until(() => framesOf(few, "unmatched").length === 1, "unmatched");
    expect(framesOf(few, "unmatched")[0]).toMatchObject({ topic: `${root}.few.t5`, code: "too_many_topics" });
    few.close();
  });

  it("refuses bad input with clear errors", async () => {
    const root = freshTopic("pat");
    // An invalid pattern, on the upgrade.
    const bad = await openSocket("x", `/v1/patterns/ws?pattern=${encodeURIComponent("a.>.b")}`);
    expect(await bad.frame("error")).toMatchObject({ code: "invalid_field" });
    await bad.until(() => bad.closed !== null, "close");
    expect(bad.closed?.code).toBe(4400);
    // No subscribe scope at all.
    const publisher = await issueKey("default", [`publish:${root}.>`]);
    const refused = await openSocket("x", `/v1/patterns/ws?pattern=${root}.*`, { token: publisher.key });
    expect(await refused.frame("error")).toMatchObject({ code: "forbidden" });
    // Not an upgrade.
    const plain = await gatewayFetch(`/v1/patterns/ws?pattern=${root}.*`);
    expect(plain.status).toBe(426);
    expect(((await plain.json()) as { error: { code: string } }).error.code).toBe("upgrade_required");
    // Bad frames on a good socket, then a second subscribe.
    await publish(`${root}.a`, 1);
    const s = await openSocket("x", `/v1/patterns/ws?pattern=${root}.*`);
    s.send({ type: "subscribe", id: 7, credit: -1 });
    await s.until(() => framesOf(s, "error").length === 1, "the refusal");
    expect(framesOf(s, "error")[0]).toMatchObject({ id: 7, code: "invalid_field" });
    s.send({ type: "publish", id: 8, messages: [{ data: 1 }] });
    await s.until(() => framesOf(s, "error").length === 2, "the refusal");
    expect(framesOf(s, "error")[1]).toMatchObject({ id: 8, code: "unknown_type" });
    s.send({ type: "subscribe", id: 9, cursors: { [`${root}.a`]: 50 } });
    await s.until(() => framesOf(s, "matching").length === 1, "matching");
    // A cursor past the end of a topic: that topic is unmatched, the others go on.
    expect(framesOf(s, "unmatched")[0]).toMatchObject({ topic: `${root}.a`, code: "offset_out_of_range" });
    s.send({ type: "subscribe", id: 10 });
    await s.until(() => framesOf(s, "error").length === 3, "the refusal");
    expect(framesOf(s, "error")[2]).toMatchObject({ id: 10, code: "already_subscribed" });
    // The running subscription goes on.
    await publish(`${root}.b`, 1);
    await s.until(() => received(s).includes(`${root}.b@0`), "a message after the refusals");
    expect(s.closed).toBeNull();
    s.close();
  });
});
