import { describe, expect, it } from "vitest";
import type { AckEntry } from "../../protocol/frames.ts";
import { freshTopic, numbered, openSocket, type TestSocket } from "./helpers.ts";

/** Send `count` one-message publishes without waiting; ids 1..count (a fresh socket's first ids). */
function burst(s: TestSocket, count: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = s.nextId();
    ids.push(id);
    s.send({ type: "publish", id, messages: [{ data: { n: i } }] });
  }
  return ids;
}

/** Every answer to a publish, from `ack` and `acks` frames alike, in arrival order. */
function answers(s: TestSocket): AckEntry[] {
  const out: AckEntry[] = [];
  for (const f of s.frames) {
    if (f.type === "ack") out.push({ id: f.id, offset: f.offset, count: f.count, ...(f.duplicate ? { duplicate: true } : {}) });
    else if (f.type === "acks") out.push(...f.acks);
  }
  return out;
}

const answerFrames = (s: TestSocket) => s.frames.filter((f) => f.type === "ack" || f.type === "acks").length;

describe("coalesced acks and shared delivery frames (issue 17)", () => {
  it("an ?acks=batch socket gets the publishes one commit made durable in one acks frame, ids in order, offsets exact", async () => {
    const topic = freshTopic("acks");
    const pub = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0&acks=batch`);
    await pub.frame("welcome");
    const COUNT = 200;
    const ids = burst(pub, COUNT);
    await pub.until(() => answers(pub).length >= COUNT, `${COUNT} answers`);
    const got = answers(pub);
    // Exactly one answer per publish, in the order they were sent, and one publisher alone on
    // the topic gets offset = its publish's position.
    expect(got.map((a) => a.id)).toEqual(ids);
    expect(got.map((a) => a.offset)).toEqual(ids.map((_, i) => i));
    expect(got.every((a) => a.count === 1)).toBe(true);
    // Publishes sent together share commits, and each commit is answered with one frame.
    expect(answerFrames(pub)).toBeLessThan(COUNT);
    expect(pub.frames.some((f) => f.type === "acks" && f.acks.length > 1)).toBe(true);
    pub.close();
  });

  it("an ?acks=batch hibernatable socket gets exactly one answer per publish, in order", async () => {
    // Each frame of a hibernatable socket is its own runtime event, so its publishes mostly commit
    // one by one; what matters is that every one is answered once, with its own offsets.
    const topic = freshTopic("acks-hib");
    const pub = await openSocket(topic, `/v1/topics/${topic}/ws?acks=batch`);
    await pub.frame("welcome");
    const ids = burst(pub, 100);
    await pub.until(() => answers(pub).length >= 100, "100 answers");
    expect(answers(pub).map((a) => [a.id, a.offset])).toEqual(ids.map((id, i) => [id, i]));
    pub.close();
  });

  it("a socket opened without ?acks gets one ack frame per publish, never an acks frame", async () => {
    const topic = freshTopic("acks-each");
    const pub = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0`);
    await pub.frame("welcome");
    const COUNT = 200;
    const ids = burst(pub, COUNT);
    await pub.until(() => answers(pub).length >= COUNT, `${COUNT} answers`);
    expect(pub.frames.filter((f) => f.type === "acks")).toEqual([]);
    expect(answerFrames(pub)).toBe(COUNT);
    expect(answers(pub).map((a) => a.id)).toEqual(ids);
    pub.close();
  });

  it("a resend of a stored producer seq is answered with duplicate inside an acks frame", async () => {
    const topic = freshTopic("acks-dup");
    const pub = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0&acks=batch`);
    await pub.frame("welcome");
    const producer = "p-acks";
    expect(await pub.publish([{ data: 1 }], { id: producer, seq: 0 })).toMatchObject({ type: "ack", offset: 0, count: 1 });
    pub.send({ type: "publish", id: 100, messages: [{ data: 2 }], producer: { id: producer, seq: 1 } });
    pub.send({ type: "publish", id: 101, messages: [{ data: 1 }], producer: { id: producer, seq: 0 } });
    await pub.until(() => answers(pub).some((a) => a.id === 100) && answers(pub).some((a) => a.id === 101), "both answers");
    const byId = new Map(answers(pub).map((a) => [a.id, a]));
    expect(byId.get(100)).toMatchObject({ offset: 1, count: 1 });
    expect(byId.get(101)).toMatchObject({ offset: 0, count: 1, duplicate: true });
    pub.close();
  });

  it("refuses an unknown acks mode with invalid_field", async () => {
    const topic = freshTopic("acks-bad");
    const s = await openSocket(topic, `/v1/topics/${topic}/ws?acks=some`);
    expect(await s.frame("error")).toMatchObject({ code: "invalid_field" });
  });

  it("a burst of one-message publishes reaches a live subscriber in fewer frames, every offset once, in order", async () => {
    const topic = freshTopic("fewer-frames");
    const sub = await openSocket(topic);
    sub.autoCredit = true;
    await sub.subscribe("latest", 1000);
    const pub = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0&acks=batch`);
    await pub.frame("welcome");
    const COUNT = 300;
    burst(pub, COUNT);
    const got = await sub.waitDelivered(COUNT);
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    expect(got.map((m) => (m.data as { n: number }).n)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    expect(sub.frames.filter((f) => f.type === "messages").length).toBeLessThan(COUNT);
    pub.close();
    sub.close();
  });

  it("subscribers catching up from the same offset share pages yet each stays within its own credit", async () => {
    const topic = freshTopic("shared-pages");
    const pub = await openSocket(topic);
    await pub.publish(numbered(40));
    const credits = [7, 7, 7, 15, 40];
    const subs: TestSocket[] = [];
    for (const credit of credits) {
      const s = await openSocket(topic);
      await s.subscribe(0, credit);
      subs.push(s);
    }
    for (const [i, s] of subs.entries()) {
      const got = await s.waitDelivered(credits[i]!);
      expect(got.map((m) => m.offset)).toEqual(Array.from({ length: credits[i]! }, (_, j) => j));
    }
    // Nothing past the credit, even after another commit and a round trip.
    await pub.publish(numbered(5, 40));
    await pub.publish(numbered(1, 45));
    for (const [i, s] of subs.entries()) expect(s.delivered().length).toBe(Math.min(credits[i]!, 46));
    // More credit: each resumes where it stopped, exactly.
    for (const s of subs) s.send({ type: "credit", messages: 100 });
    for (const s of subs) {
      const got = await s.waitDelivered(46);
      expect(got.map((m) => m.offset)).toEqual(Array.from({ length: 46 }, (_, j) => j));
      expect(got.map((m) => (m.data as { n: number }).n)).toEqual(Array.from({ length: 46 }, (_, j) => j));
      s.close();
    }
    pub.close();
  });
});
