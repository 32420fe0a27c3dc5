/**
 * Gateway security end to end (issue 5): every refusal has the right status and code and
 * changes nothing stored; tenants never see each other's messages; rate limits answer 429 with
 * Retry-After; WebSocket frames are limited per connection; revoking a key closes its sockets.
 */
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { REFUSAL_BURST } from "../../objects/frame-limiter.ts";
import type { RateOverrides } from "../../protocol/credential.ts";
import { anonymousFetch, bindings, freshTopic, gatewayFetch, issueKey, keysObject, numbered, openSocket } from "./helpers.ts";

/** Issue a key straight from the Keys object (any tenant). */
const issue = (tenant: string, scopes: string[], extra: { rate?: RateOverrides; expiresAt?: number } = {}) => issueKey(tenant, scopes, extra);

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function errorOf(res: Response): Promise<{ status: number; code: string; body: { error: { code: string; message: string; retryAfterMs?: number } } }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, code: body.error.code, body };
}

/** Head of a topic in the tenant `default`, read with the all-scopes test credential (0: the topic does not exist). */
async function head(topic: string): Promise<number> {
  const res = await gatewayFetch(`/v1/topics/${topic}`);
  if (res.status === 404) return 0;
  return ((await res.json()) as { head: number }).head;
}

async function publishWith(topic: string, headers: Record<string, string>): Promise<Response> {
  return anonymousFetch(`/v1/topics/${topic}/messages`, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ data: { x: 1 } }),
  });
}

describe("authentication", () => {
  it("refuses every kind of bad credential with 401 unauthorized and stores nothing", async () => {
    const topic = freshTopic("sec");
    await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data: 0 }) });
    const revoked = await issue("default", ["publish:>"]);
    await keysObject().revoke("default", revoked.id);
    const expired = await issue("default", ["publish:>"], { expiresAt: Date.now() - 1000 });
    const forged = `${(await issue("default", ["publish:>"])).key.slice(0, -4)}AAAA`;
    const now = Math.floor(Date.now() / 1000);
    // Signed with the bus's own secret, so each case fails on exactly the check it names.
    const jwt = (edit: (j: SignJWT) => SignJWT, secret = bindings.DOVETAIL_JWT_SECRET!) =>
      edit(
        new SignJWT({ tenant: "default", scope: "publish:>" })
          .setProtectedHeader({ alg: "HS256" })
          .setSubject("s")
          .setIssuer("dovetail")
          .setAudience("dovetail")
          .setExpirationTime(now + 60),
      ).sign(new TextEncoder().encode(secret));
    const cases: [string, Record<string, string>, RegExp][] = [
      ["no credential", {}, /no credential/],
      ["not a bearer", { Authorization: "Basic Zm9vOmJhcg==" }, /Bearer/],
      ["garbage", bearer("hello"), /neither/],
      ["bad signature (JWT)", bearer(await jwt((j) => j, "not-the-bus-secret-not-the-bus-secret")), /signature|not accepted/],
      ["expired (JWT)", bearer(await jwt((j) => j.setExpirationTime(now - 60))), /expired/],
      ["not yet valid (JWT)", bearer(await jwt((j) => j.setNotBefore(now + 600))), /not yet valid|nbf/],
      ["wrong audience (JWT)", bearer(await jwt((j) => j.setAudience("other"))), /audience|aud/],
      ["forged API key", bearer(forged), /unknown API key/],
      ["revoked API key", bearer(revoked.key), /revoked/],
      ["expired API key", bearer(expired.key), /expired/],
    ];
    for (const [what, headers, message] of cases) {
      const e = await errorOf(await publishWith(topic, headers));
      expect({ what, status: e.status, code: e.code }).toEqual({ what, status: 401, code: "unauthorized" });
      expect(e.body.error.message, what).toMatch(message);
    }
    // A refused WebSocket upgrade says why in an error frame, then closes with 4401.
    const s = await openSocket(topic, undefined, { token: null });
    await s.until(() => s.closed !== null, "the refusal close");
    expect(s.closed?.code).toBe(4401);
    expect(s.frames[0]).toMatchObject({ type: "error", code: "unauthorized" });
    expect(await head(topic)).toBe(1);
  });

  it("accepts an API key in ?token= on WebSocket upgrades only", async () => {
    const topic = freshTopic("sec");
    const { key } = await issue("default", ["publish:>", "subscribe:>"]);
    const res = await anonymousFetch(`/v1/topics/${topic}/ws?token=${encodeURIComponent(key)}`, { headers: { Upgrade: "websocket" } });
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    res.webSocket!.close();
    const http = await errorOf(await anonymousFetch(`/v1/topics/${topic}/messages?token=${encodeURIComponent(key)}`));
    expect(http).toMatchObject({ status: 401, code: "unauthorized" });
  });
});

describe("permissions and tenants", () => {
  it("refuses the wrong scope with 403 forbidden and stores nothing", async () => {
    const topic = freshTopic("sec");
    const reader = await issue("default", ["subscribe:>"]);
    const narrow = await issue("default", ["publish:agents.*", "subscribe:agents.*"]);
    expect(await errorOf(await publishWith(topic, bearer(reader.key)))).toMatchObject({ status: 403, code: "forbidden" });
    expect(await errorOf(await publishWith(topic, bearer(narrow.key)))).toMatchObject({ status: 403, code: "forbidden" });
    expect(
      await errorOf(
        await anonymousFetch(`/v1/topics/${topic}`, { method: "PATCH", headers: bearer(reader.key), body: JSON.stringify({ retention: { maxMessages: 1 } }) }),
      ),
    ).toMatchObject({
      status: 403,
      code: "forbidden",
    });
    // A subscribe-only socket may not publish: refused per frame by the topic object.
    const s = await openSocket(topic, undefined, { token: reader.key });
    expect(await s.publish(numbered(1))).toMatchObject({ type: "error", code: "forbidden" });
    s.close();
    expect(await head(topic)).toBe(0);
    // The narrow key works where its pattern matches.
    const ok = freshTopic("agents").replace(/^agents\.(.*)$/, (_m, rest: string) => `agents.${rest.replace(/\./g, "-")}`);
    expect((await publishWith(ok, bearer(narrow.key))).status).toBe(201);
  });

  it("keeps tenants apart: the same topic name is a different log per tenant", async () => {
    const topic = freshTopic("shared");
    const a = await issue("tenant-a", ["publish:>", "subscribe:>"]);
    const b = await issue("tenant-b", ["publish:>", "subscribe:>"]);
    const subB = await openSocket(topic, undefined, { token: b.key });
    await subB.subscribe("earliest");
    expect((await publishWith(topic, bearer(a.key))).status).toBe(201);
    expect((await publishWith(topic, bearer(a.key))).status).toBe(201);
    const readB = (await (await anonymousFetch(`/v1/topics/${topic}/messages?from=0`, { headers: bearer(b.key) })).json()) as {
      messages: unknown[];
      head: number;
    };
    expect(readB).toMatchObject({ messages: [], head: 0 });
    const readA = (await (await anonymousFetch(`/v1/topics/${topic}/messages?from=0`, { headers: bearer(a.key) })).json()) as { head: number };
    expect(readA.head).toBe(2);
    // Tenant b's subscriber saw nothing of tenant a's messages; its own publish reaches it.
    expect((await publishWith(topic, bearer(b.key))).status).toBe(201);
    const got = await subB.waitDelivered(1);
    expect(got).toHaveLength(1);
    expect(got[0]!.offset).toBe(0);
    subB.close();
    // Nor can tenant b manage tenant a's keys.
    const admB = await issue("tenant-b", ["admin:>"]);
    expect(await errorOf(await anonymousFetch(`/v1/admin/keys/${a.id}`, { method: "DELETE", headers: bearer(admB.key) }))).toMatchObject({
      status: 404,
      code: "not_found",
    });
    expect((await publishWith(topic, bearer(a.key))).status).toBe(201);
  });

  it("refuses the admin API to a non-admin key and changes no key", async () => {
    const user = await issue("default", ["publish:>", "subscribe:>", "admin:team-a.>"]);
    const before = (await keysObject().list("default")).length;
    const create = await anonymousFetch("/v1/admin/keys", {
      method: "POST",
      headers: bearer(user.key),
      body: JSON.stringify({ name: "x", scopes: ["admin:>"] }),
    });
    expect(await errorOf(create)).toMatchObject({ status: 403, code: "forbidden" });
    expect(await errorOf(await anonymousFetch("/v1/admin/keys", { headers: bearer(user.key) }))).toMatchObject({ status: 403, code: "forbidden" });
    expect(await errorOf(await anonymousFetch(`/v1/admin/keys/${user.id}`, { method: "DELETE", headers: bearer(user.key) }))).toMatchObject({
      status: 403,
      code: "forbidden",
    });
    expect((await keysObject().list("default")).length).toBe(before);
  });
});

describe("admin API and revocation", () => {
  it("creates, lists and revokes keys; revocation refuses new requests and closes live sockets", async () => {
    const topic = freshTopic("rev");
    const created = await gatewayFetch("/v1/admin/keys", {
      method: "POST",
      body: JSON.stringify({ name: "agent-1", scopes: ["publish:rev.>", "subscribe:rev.>"], expiresInMs: 3_600_000 }),
    });
    expect(created.status).toBe(201);
    const key = (await created.json()) as { key: string; id: string; scopes: string[]; expiresAt: number; tenant: string };
    expect(key).toMatchObject({ scopes: ["publish:rev.>", "subscribe:rev.>"], tenant: "default" });
    const listed = (await (await gatewayFetch("/v1/admin/keys")).json()) as { keys: { id: string }[] };
    expect(listed.keys.some((k) => k.id === key.id)).toBe(true);
    expect(JSON.stringify(listed)).not.toContain(key.key);

    const s = await openSocket(topic, undefined, { token: key.key });
    await s.subscribe("earliest");
    const plain = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0`, { token: key.key });
    await plain.frame("welcome");
    const revoked = await gatewayFetch(`/v1/admin/keys/${key.id}`, { method: "DELETE" });
    expect(await revoked.json()).toMatchObject({ id: key.id, closedSockets: 2 });
    await s.until(() => s.closed !== null, "the revoked socket to close");
    await plain.until(() => plain.closed !== null, "the revoked plain socket to close");
    expect(s.closed?.code).toBe(4401);
    expect(plain.closed?.code).toBe(4401);
    expect(s.frames.some((f) => f.type === "error" && f.code === "unauthorized")).toBe(true);
    expect(await errorOf(await publishWith(topic, bearer(key.key)))).toMatchObject({ status: 401, code: "unauthorized" });
    expect(await head(topic)).toBe(0);
  });

  it("rejects invalid key requests with documented codes", async () => {
    const bad = await gatewayFetch("/v1/admin/keys", { method: "POST", body: JSON.stringify({ name: "x", scopes: ["write:>"] }) });
    expect(await errorOf(bad)).toMatchObject({ status: 400, code: "invalid_field" });
    const notJson = await gatewayFetch("/v1/admin/keys", { method: "POST", body: "{" });
    expect(await errorOf(notJson)).toMatchObject({ status: 400, code: "bad_frame" });
  });
});

describe("rate limits", () => {
  it("answers 429 with Retry-After and the JSON error shape once a key's burst is spent", async () => {
    const topic = freshTopic("rl");
    const { key } = await issue("default", ["publish:>", "subscribe:>"], { rate: { requestsPerSecond: 0.5, burst: 3 } });
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 5; i++) {
      const res = await publishWith(topic, bearer(key));
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
    }
    expect(statuses).toEqual([201, 201, 201, 429, 429]);
    expect(Number(limited!.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    const e = await errorOf(limited!);
    expect(e.code).toBe("rate_limited");
    expect(e.body.error.retryAfterMs).toBeGreaterThan(0);
    expect(await head(topic)).toBe(3);
  });

  it("limits frames per connection: error frames with retryAfterMs, then close 1008 under sustained abuse", async () => {
    const topic = freshTopic("rl");
    const { key } = await issue("default", ["publish:>", "subscribe:>"], { rate: { framesPerSecond: 0.1, frameBurst: 3 } });
    const s = await openSocket(topic, undefined, { token: key });
    await s.frame("welcome");
    for (let i = 0; i < 5; i++) s.send({ type: "publish", id: s.nextId(), messages: [{ data: i }] });
    await s.until(() => s.frames.filter((f) => f.type === "ack" || f.type === "error").length >= 5, "five answers");
    const answers = s.frames.filter((f) => f.type === "ack" || f.type === "error");
    expect(answers.filter((f) => f.type === "ack")).toHaveLength(3);
    const refusal = answers.find((f) => f.type === "error");
    expect(refusal).toMatchObject({ type: "error", code: "rate_limited" });
    expect((refusal as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    // Every refusal names the frame it refuses, so a client can retry exactly that frame.
    const ids = answers.map((f) => (f as { id?: number }).id);
    expect(new Set(ids).size).toBe(5);
    expect(ids.every((id) => typeof id === "number")).toBe(true);
    // Ignoring retryAfterMs empties the refusal budget: the connection is closed.
    for (let i = 0; i < REFUSAL_BURST + 50; i++) s.sendRaw("{}");
    await s.until(() => s.closed !== null, "the abuse close");
    expect(s.closed?.code).toBe(1008);
    expect(await head(topic)).toBe(3);
  });

  it("limits messages per credential and topic so one producer cannot starve the others", async () => {
    const topic = freshTopic("rl");
    const greedy = await issue("default", ["publish:>"], { rate: { topicMessagesPerSecond: 1, topicMessageBurst: 10 } });
    const other = await issue("default", ["publish:>"], { rate: { topicMessagesPerSecond: 1, topicMessageBurst: 10 } });
    const g = await openSocket(topic, undefined, { token: greedy.key });
    expect(await g.publish(numbered(10))).toMatchObject({ type: "ack", count: 10 });
    expect(await g.publish(numbered(5))).toMatchObject({ type: "error", code: "rate_limited" });
    const o = await openSocket(topic, undefined, { token: other.key });
    expect(await o.publish(numbered(5))).toMatchObject({ type: "ack", offset: 10, count: 5 });
    g.close();
    o.close();
  });
});

describe("open mode", () => {
  it("says on /healthz whether auth is on", async () => {
    const res = await anonymousFetch("/healthz");
    expect(res.headers.get("X-Dovetail-Auth")).toBe("on");
    expect(await res.json()).toMatchObject({ auth: "on" });
  });
});

describe("Durable Streams routes", () => {
  it("reading a stream needs subscribe; writing needs publish; forking needs subscribe on the source", async () => {
    const base = freshTopic("dsperm");
    const own = `${base}.own`;
    const other = `${base}.other`;
    // Create both streams with the all-scopes test credential.
    for (const t of [own, other]) {
      const res = await gatewayFetch(`/v1/stream/${t}`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: "[1]" });
      expect(res.status).toBe(201);
    }
    const reader = await issue("default", [`subscribe:${own}`]);
    const writer = await issue("default", [`publish:${own}`]);
    const read = (t: string, key: string) => anonymousFetch(`/v1/stream/${t}?offset=-1`, { headers: bearer(key) });
    const append = (t: string, key: string) =>
      anonymousFetch(`/v1/stream/${t}`, { method: "POST", headers: { ...bearer(key), "Content-Type": "application/json" }, body: "[2]" });

    expect((await read(own, reader.key)).status).toBe(200);
    expect(await errorOf(await append(own, reader.key))).toMatchObject({ status: 403, code: "forbidden" });
    expect(await errorOf(await read(other, reader.key))).toMatchObject({ status: 403, code: "forbidden" });
    expect((await append(own, writer.key)).status).toBe(204);
    expect(await errorOf(await read(own, writer.key))).toMatchObject({ status: 403, code: "forbidden" });
    expect(await errorOf(await append(other, writer.key))).toMatchObject({ status: 403, code: "forbidden" });

    const forker = await issue("default", [`publish:${base}.>`, `subscribe:${own}`]);
    const fork = (from: string) =>
      anonymousFetch(`/v1/stream/${base}.fork.${from}`, {
        method: "PUT",
        headers: { ...bearer(forker.key), "Content-Type": "application/json", "Stream-Forked-From": `/v1/stream/${from}` },
      });
    expect(await errorOf(await fork(other))).toMatchObject({ status: 403, code: "forbidden" });
    expect((await fork(own)).status).toBe(201);
    // Nothing the refused requests tried was stored: `own` holds 1 then 2, `other` only 1.
    const body = async (t: string) => (await (await gatewayFetch(`/v1/stream/${t}?offset=-1`)).json()) as unknown[];
    expect(await body(own)).toEqual([1, 2]);
    expect(await body(other)).toEqual([1]);
  });
});

describe("CORS", () => {
  it("answers preflights without a credential and stamps refusals so a page can read them", async () => {
    const topic = freshTopic("cors");
    const preflight = await anonymousFetch(`/v1/stream/${topic}`, {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, producer-id" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-headers")).toMatch(/authorization/);
    const refused = await anonymousFetch(`/v1/topics/${topic}/messages`, { headers: { Origin: "https://app.example" } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("*");
  });
});
