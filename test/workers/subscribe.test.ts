import { describe, expect, it } from "vitest";
import { freshTopic, numbered, openSocket } from "./helpers.ts";

describe("subscribing from an offset", () => {
  it("from 0 reads everything stored, then follows live", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    await pub.publish(numbered(5));
    const sub = await openSocket(topic);
    expect(await sub.subscribe(0)).toMatchObject({ type: "subscribed", next: 0 });
    await sub.waitDelivered(5);
    await pub.publish(numbered(3, 5));
    const got = await sub.waitDelivered(8);
    expect(got.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(got.map((m) => (m.data as { n: number }).n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("from the middle starts exactly at that offset", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    await pub.publish(numbered(10));
    const sub = await openSocket(topic);
    expect(await sub.subscribe(6)).toMatchObject({ next: 6 });
    const got = await sub.waitDelivered(4);
    expect(got.map((m) => m.offset)).toEqual([6, 7, 8, 9]);
  });

  it("from latest gets only what is published after it", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    await pub.publish(numbered(4));
    const sub = await openSocket(topic);
    expect(await sub.subscribe("latest")).toMatchObject({ next: 4 });
    await pub.publish(numbered(2, 4));
    const got = await sub.waitDelivered(2);
    expect(got.map((m) => m.offset)).toEqual([4, 5]);
  });

  it("from earliest equals from the first retained offset", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    await pub.publish(numbered(3));
    const sub = await openSocket(topic);
    expect(await sub.subscribe("earliest")).toMatchObject({ next: 0 });
    expect((await sub.waitDelivered(3)).map((m) => m.offset)).toEqual([0, 1, 2]);
  });

  it("from a time starts at the first message stored at or after it", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    await pub.publish(numbered(3));
    await new Promise((r) => setTimeout(r, 20));
    const cut = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    await pub.publish(numbered(2, 3));
    const sub = await openSocket(topic);
    expect(await sub.subscribe({ time: cut })).toMatchObject({ next: 3 });
    expect((await sub.waitDelivered(2)).map((m) => m.offset)).toEqual([3, 4]);
    const late = await openSocket(topic);
    expect(await late.subscribe({ time: Date.now() + 60_000 })).toMatchObject({ next: 5 });
  });

  it("switches from catch-up to live with no gap and no duplicate while publishers keep writing", async () => {
    const topic = freshTopic("switch");
    const pub = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0`);
    await pub.publish(numbered(1000).map((m) => m));
    await pub.publish(numbered(1000, 1000));
    // Keep publishing while the subscriber catches up from 0 in pages.
    let writing = true;
    let written = 2000;
    const writer = (async () => {
      while (writing && written < 8000) {
        await pub.publish(numbered(50, written));
        written += 50;
      }
    })();
    const sub = await openSocket(topic);
    sub.autoCredit = true;
    await sub.subscribe(0, 300);
    await sub.waitDelivered(4000, 60_000);
    writing = false;
    await writer;
    const got = await sub.waitDelivered(written, 60_000);
    expect(got.length).toBe(written);
    got.forEach((m, i) => {
      expect(m.offset).toBe(i);
      expect((m.data as { n: number }).n).toBe(i);
    });
  });

  it("rejects an offset past the end with offset_out_of_range naming the head", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    await s.publish(numbered(2));
    expect(await s.subscribe(3)).toMatchObject({ type: "error", code: "offset_out_of_range", head: 2 });
    // head itself is valid: it means "the next message".
    expect(await s.subscribe(2)).toMatchObject({ type: "subscribed", next: 2 });
  });
});
