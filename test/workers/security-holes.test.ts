/**
 * The classes of attack of issue 18, each kept closed by a test that failed on the code before it:
 * internal signals sent by a client; HEAD and other reads around permissions, and reads that
 * create storage; revocation that misses sockets or touches topics it should not; credentials
 * that expire under a silent subscriber; frames that vanish or are answered differently by the
 * two socket kinds; invalid UTF-8 and deep nesting on every path.
 */
import { listDurableObjectIds } from "cloudflare:test";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { topicObjectName } from "../../protocol/topic-address.ts";
import { MAX_DATA_DEPTH } from "../../protocol/frames.ts";
import { anonymousFetch, bindings, freshTopic, gatewayFetch, issueKey, numbered, openSocket } from "./helpers.ts";

/** Every name the gateway ever used to signal the object, and the parameters of today's internal requests. */
const INTERNAL_HEADERS: Record<string, string> = {
  "X-Dovetail-Stream-Wait": "999999999999",
  "X-Dovetail-Topic": "some.other.topic",
  "X-Dovetail-Grant": JSON.stringify({ cred: "open", pub: true, sub: true }),
  "X-Dovetail-Internal": "1",
};
const INTERNAL_QUERY = `grant=${encodeURIComponent(JSON.stringify({ cred: "open", pub: true, sub: true }))}&after=0&topic=some.other.topic`;

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Topic object ids that have storage now. */
async function storedTopicIds(): Promise<Set<string>> {
  return new Set((await listDurableObjectIds(bindings.TOPIC)).map((id) => id.toString()));
}
const topicId = (topic: string) => bindings.TOPIC.idFromName(topicObjectName("default", topic)).toString();

async function head(topic: string): Promise<number> {
  const res = await gatewayFetch(`/v1/topics/${topic}`);
  if (res.status === 404) return 0;
  return ((await res.json()) as { head: number }).head;
}

async function seed(topic: string, count: number): Promise<void> {
  const res = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ messages: numbered(count) }) });
  expect(res.status).toBe(201);
}

/** JSON text of a value nested `depth` arrays deep. */
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

describe("internal signals sent by a client", () => {
  it("a WebSocket upgrade carrying every internal header and parameter gets exactly its credential's rights", async () => {
    const topic = freshTopic("hx");
    await seed(topic, 3);
    const prefix = topic.split(".")[0];
    const publishOnly = await issueKey("default", [`publish:${prefix}.>`]);
    const subscribeOnly = await issueKey("default", [`subscribe:${prefix}.>`]);

    const p = await openSocket(topic, `/v1/topics/${topic}/ws?${INTERNAL_QUERY}`, { token: publishOnly.key, headers: INTERNAL_HEADERS });
    expect(await p.frame("welcome")).toMatchObject({ topic, head: 3 });
    expect(await p.subscribe(0)).toMatchObject({ type: "error", code: "forbidden" });
    expect(await p.publish(numbered(1))).toMatchObject({ type: "ack", offset: 3 });

    const s = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0&${INTERNAL_QUERY}`, { token: subscribeOnly.key, headers: INTERNAL_HEADERS });
    await s.frame("welcome");
    expect(await s.publish(numbered(1))).toMatchObject({ type: "error", code: "forbidden" });
    expect(await head(topic)).toBe(4);
    await new Promise((r) => setTimeout(r, 50));
    expect(p.delivered()).toEqual([]);
    p.close();
    s.close();
  });

  it("a socket opened with internal headers is still rate limited and still closed by revocation", async () => {
    const topic = freshTopic("hx");
    const limited = await issueKey("default", ["publish:>", "subscribe:>"], { rate: { framesPerSecond: 0.1, frameBurst: 2 } });
    const s = await openSocket(topic, `/v1/topics/${topic}/ws?${INTERNAL_QUERY}`, { token: limited.key, headers: INTERNAL_HEADERS });
    await s.frame("welcome");
    const answers = await Promise.all(Array.from({ length: 5 }, () => s.publish(numbered(1))));
    expect(answers.filter((a) => a.type === "ack")).toHaveLength(2);
    expect(answers.filter((a) => a.type === "error" && a.code === "rate_limited")).toHaveLength(3);
    const revoked = await gatewayFetch(`/v1/admin/keys/${limited.id}`, { method: "DELETE" });
    expect(await revoked.json()).toMatchObject({ closedSockets: 1 });
    await s.until(() => s.closed !== null, "the revocation close");
    expect(s.closed?.code).toBe(4401);
    expect(await head(topic)).toBe(2);
  });

  it("internal headers sent on any HTTP route change no answer", async () => {
    const topic = freshTopic("hx");
    await seed(topic, 2);
    const prefix = topic.split(".")[0];
    const publishOnly = await issueKey("default", [`publish:${prefix}.>`]);
    const subscribeOnly = await issueKey("default", [`subscribe:${prefix}.>`]);
    const routes: [string, string, string, RequestInit][] = [
      ["publish without publish", "POST", `/v1/topics/${topic}/messages`, { body: JSON.stringify({ data: 1 }), headers: bearer(subscribeOnly.key) }],
      ["read without subscribe", "GET", `/v1/topics/${topic}/messages?from=0`, { headers: bearer(publishOnly.key) }],
      ["HEAD read without subscribe", "HEAD", `/v1/topics/${topic}/messages?from=0`, { headers: bearer(publishOnly.key) }],
      [
        "retention without admin",
        "PATCH",
        `/v1/topics/${topic}`,
        { body: JSON.stringify({ retention: { maxMessages: 1 } }), headers: bearer(publishOnly.key) },
      ],
      ["stream long-poll without subscribe", "GET", `/v1/stream/${topic}?offset=-1&live=long-poll`, { headers: bearer(publishOnly.key) }],
      [
        "stream append without publish",
        "POST",
        `/v1/stream/${topic}`,
        { body: "[1]", headers: { ...bearer(subscribeOnly.key), "Content-Type": "application/json" } },
      ],
      ["stream create without publish", "PUT", `/v1/stream/${topic}.new`, { headers: bearer(subscribeOnly.key) }],
      ["admin without admin", "GET", "/v1/admin/keys", { headers: bearer(publishOnly.key) }],
      ["read with subscribe", "GET", `/v1/topics/${topic}/messages?from=0`, { headers: bearer(subscribeOnly.key) }],
    ];
    for (const [what, method, path, init] of routes) {
      const plain = await anonymousFetch(path, { ...init, method });
      const hostile = await anonymousFetch(`${path}${path.includes("?") ? "&" : "?"}${INTERNAL_QUERY}`, {
        ...init,
        method,
        headers: { ...(init.headers as Record<string, string>), ...INTERNAL_HEADERS },
      });
      expect({ what, status: hostile.status }).toEqual({ what, status: plain.status });
      if (plain.status >= 400 && method !== "HEAD") {
        const [a, b] = [(await plain.json()) as { error: { code: string } }, (await hostile.json()) as { error: { code: string } }];
        expect({ what, code: b.error.code }).toEqual({ what, code: a.error.code });
      }
    }
    expect(await head(topic)).toBe(2);
  });
});

describe("reads and permissions", () => {
  it("checks HEAD as the GET it mirrors, on every read route", async () => {
    const victim = freshTopic("victim");
    await seed(victim, 4);
    const other = await issueKey("default", ["publish:zz.>"]);
    for (const path of [`/v1/topics/${victim}/messages?from=3`, `/v1/topics/${victim}/messages?from=4`, `/v1/topics/${victim}`, `/v1/stream/${victim}`]) {
      const get = await anonymousFetch(path, { headers: bearer(other.key) });
      const headRes = await anonymousFetch(path, { method: "HEAD", headers: bearer(other.key) });
      expect({ path, get: get.status, head: headRes.status }).toEqual({ path, get: 403, head: 403 });
    }
  });

  it("no read of any kind creates a topic", async () => {
    const names = Array.from({ length: 20 }, () => freshTopic("ghost"));
    for (const [i, t] of names.entries()) {
      const reads: [string, RequestInit][] = [
        [`/v1/topics/${t}`, { method: "HEAD" }],
        [`/v1/topics/${t}`, {}],
        [`/v1/topics/${t}/messages?from=0`, {}],
        [`/v1/topics/${t}/messages?from=0`, { method: "HEAD" }],
        [`/v1/stream/${t}`, { method: "HEAD" }],
        [`/v1/stream/${t}?offset=-1`, {}],
        [`/v1/stream/${t}?offset=-1&live=long-poll`, {}],
      ];
      const [path, init] = reads[i % reads.length]!;
      const res = await gatewayFetch(path, init);
      expect(res.status, path).toBeLessThan(500);
    }
    // The answers an empty log gives, from the gateway alone.
    expect(await (await gatewayFetch(`/v1/topics/${names[0]}/messages`)).json()).toEqual({ messages: [], next: 0, head: 0, earliest: 0 });
    expect((await gatewayFetch(`/v1/topics/${names[0]}/messages?from=1`)).status).toBe(416);
    expect(await (await gatewayFetch(`/v1/topics/${names[0]}`)).json()).toMatchObject({ topic: names[0], head: 0, earliest: 0, messages: 0 });
    const stored = await storedTopicIds();
    expect(names.filter((t) => stored.has(topicId(t)))).toEqual([]);
    // A write does create it, and the read path then finds it.
    await seed(names[0]!, 1);
    expect(await head(names[0]!)).toBe(1);
    expect((await storedTopicIds()).has(topicId(names[0]!))).toBe(true);
  });
});

describe("revocation", () => {
  it("closes every live socket of a key however many topics it touched, and touches no other topic", async () => {
    const prefix = freshTopic("rv").replaceAll(".", "-");
    const key = await issueKey("default", [`publish:${prefix}.>`, `subscribe:${prefix}.>`]);
    const old = `${prefix}.old`;
    const a = await openSocket(old, undefined, { token: key.key });
    await a.subscribe("earliest");
    const b = await openSocket(old, `/v1/topics/${old}/ws?hibernate=0`, { token: key.key });
    await b.frame("welcome");
    // Then it touches 300 more topics (sockets opened and closed) and is refused on 50 others.
    for (let i = 0; i < 300; i++) {
      const s = await openSocket(`${prefix}.t${i}`, undefined, { token: key.key });
      await s.frame("welcome");
      s.close();
    }
    for (let i = 0; i < 50; i++) {
      const refused = await openSocket(`other.${prefix}.${i}`, undefined, { token: key.key });
      await refused.until(() => refused.closed !== null, "the refusal");
    }
    await new Promise((r) => setTimeout(r, 200)); // the closes reach Keys
    const before = await storedTopicIds();
    const res = await gatewayFetch(`/v1/admin/keys/${key.id}`, { method: "DELETE" });
    expect(await res.json()).toMatchObject({ id: key.id, closedSockets: 2 });
    for (const s of [a, b]) {
      await s.until(() => s.closed !== null, "the revocation close");
      expect(s.closed?.code).toBe(4401);
    }
    expect([...(await storedTopicIds())].filter((id) => !before.has(id))).toEqual([]);
    // A socket the key opens after the revocation is refused.
    const late = await openSocket(old, undefined, { token: key.key });
    await late.until(() => late.closed !== null, "the refusal");
    expect(late.closed?.code).toBe(4401);
  });

  it("closes a silent subscriber's socket when its token expires", async () => {
    const topic = freshTopic("exp");
    const secret = bindings.DOVETAIL_JWT_SECRET;
    expect(secret, "vitest.workers.config.ts sets DOVETAIL_JWT_SECRET").toBeTruthy();
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({ tenant: "default", scope: "subscribe:>" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("expiring")
      .setIssuer("dovetail")
      .setAudience("dovetail")
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(secret));
    const s = await openSocket(topic, undefined, { token });
    expect(await s.subscribe("latest")).toMatchObject({ type: "subscribed" });
    await s.until(() => s.closed !== null, "the expiry close", 15_000);
    expect(s.closed?.code).toBe(4401);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
    expect(s.frames.some((f) => f.type === "error" && f.code === "unauthorized")).toBe(true);
  });
});

describe("frames that must not vanish", () => {
  it(`refuses data nested deeper than ${MAX_DATA_DEPTH} levels on every path, with the frame's id, storing nothing`, async () => {
    const topic = freshTopic("deep");
    const s = await openSocket(topic);
    await s.frame("welcome");
    const deep = JSON.parse(nested(2000)) as unknown;
    const id = s.nextId();
    s.send({ type: "publish", id, messages: [...numbered(10), { data: deep }] });
    expect(await s.answer(id)).toMatchObject({ type: "error", id, code: "too_deep" });
    // The limit itself passes; one more level is refused.
    expect(await s.publish([{ data: JSON.parse(nested(MAX_DATA_DEPTH)) }])).toMatchObject({ type: "ack", offset: 0 });
    expect(await s.publish([{ data: JSON.parse(nested(MAX_DATA_DEPTH + 1)) }])).toMatchObject({ type: "error", code: "too_deep" });

    const http = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: `{"data":${nested(100_000)}}` });
    expect(http.status).toBe(400);
    expect(((await http.json()) as { error: { code: string } }).error.code).toBe("too_deep");
    await gatewayFetch(`/v1/stream/${topic}`, { method: "PUT", headers: { "Content-Type": "application/json" } });
    const ds = await gatewayFetch(`/v1/stream/${topic}`, { method: "POST", body: nested(100_000), headers: { "Content-Type": "application/json" } });
    expect(ds.status).toBe(400);
    expect(((await ds.json()) as { error: { code: string } }).error.code).toBe("too_deep");
    expect(await s.publish(numbered(1))).toMatchObject({ type: "ack", offset: 1 });
    expect(await head(topic)).toBe(2);
    s.close();
  });

  it("answers binary frames the same on both socket kinds, even under rate limits", async () => {
    const topic = freshTopic("bin");
    const limited = await issueKey("default", ["publish:>", "subscribe:>"], { rate: { framesPerSecond: 1000, frameBurst: 1000 } });
    for (const path of [`/v1/topics/${topic}/ws`, `/v1/topics/${topic}/ws?hibernate=0`]) {
      const s = await openSocket(topic, path, { token: limited.key });
      await s.frame("welcome");
      for (let i = 0; i < 200; i++) s.sendRaw(new Uint8Array([1, 2, 3, i]).buffer);
      await s.until(() => s.frames.filter((f) => f.type === "error").length >= 200, `200 answers on ${path}`);
      const codes = new Set(s.frames.filter((f) => f.type === "error").map((f) => (f as { code: string }).code));
      expect({ path, codes: [...codes] }).toEqual({ path, codes: ["bad_frame"] });
      expect(s.closed).toBeNull();
      expect(await s.publish(numbered(1))).toMatchObject({ type: "ack" });
      s.close();
    }
  });

  it("refuses invalid UTF-8 on every path and keeps a U+FFFD that is sent escaped", async () => {
    const topic = freshTopic("utf8");
    const utf8 = (text: string) => [...new TextEncoder().encode(text)];
    const bad = new Uint8Array([...utf8('{"data":"a'), 0xff, 0xfe, ...utf8('b"}')]);
    const http = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: bad });
    expect(http.status).toBe(400);
    expect(((await http.json()) as { error: { code: string } }).error.code).toBe("invalid_utf8");
    await gatewayFetch(`/v1/stream/${topic}`, { method: "PUT", headers: { "Content-Type": "application/json" } });
    const ds = await gatewayFetch(`/v1/stream/${topic}`, {
      method: "POST",
      body: new Uint8Array([...utf8('["a'), 0xff, 0xfe, ...utf8('b"]')]),
      headers: { "Content-Type": "application/json" },
    });
    expect(ds.status).toBe(400);
    expect(((await ds.json()) as { error: { code: string } }).error.code).toBe("invalid_utf8");
    // In a text frame the runtime has already turned invalid bytes into U+FFFD: a raw one is refused.
    const s = await openSocket(topic);
    await s.frame("welcome");
    const id = s.nextId();
    s.sendRaw(`{"type":"publish","id":${id},"messages":[{"data":"a\uFFFDb"}]}`);
    expect(await s.answer(id)).toMatchObject({ type: "error", id, code: "invalid_utf8" });
    const ok = s.nextId();
    s.sendRaw(`{"type":"publish","id":${ok},"messages":[{"data":"a\\ufffdb"}]}`);
    expect(await s.answer(ok)).toMatchObject({ type: "ack" });
    // Valid UTF-8 U+FFFD over HTTP is kept as it is.
    expect((await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data: "c\uFFFDd" }) })).status).toBe(201);
    const read = (await (await gatewayFetch(`/v1/topics/${topic}/messages?from=0`)).json()) as { messages: { data: string }[] };
    expect(read.messages.map((m) => m.data)).toEqual(["a\uFFFDb", "c\uFFFDd"]);
    s.close();
  });
});
