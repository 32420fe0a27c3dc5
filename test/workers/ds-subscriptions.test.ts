/**
 * Durable Streams subscriptions inside workerd (protocol sections 6 and 7, decision 027): the
 * control APIs, pattern backfill and streams created later, pull-wake claims, acks and releases,
 * generation fencing and leases, and the refusals (status and code) that move no cursor. Webhook
 * delivery needs a listening receiver, so it is tested from Node (test/node/ds-subscriptions.test.ts)
 * and by the official suite (test/node/conformance.test.ts).
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { encodeOffset } from "../../objects/stream-format.ts";
import { subscriptionStub } from "../../objects/subscription.ts";
import { bindings, freshPath, gatewayFetch, issueKey, until } from "./helpers.ts";

const json = { "Content-Type": "application/json" };
const sub = (id: string, rest = "", init?: RequestInit) => gatewayFetch(`/v1/stream/__ds/subscriptions/${id}${rest}`, init);
const put = (id: string, body: unknown) => sub(id, "", { method: "PUT", headers: json, body: JSON.stringify(body) });
const stream = (path: string, init?: RequestInit) => gatewayFetch(`/v1/stream/${path}`, init);
const createStream = (path: string, body?: unknown) =>
  stream(path, { method: "PUT", headers: json, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
const append = (path: string, body: unknown) => stream(path, { method: "POST", headers: json, body: JSON.stringify(body) });
const withToken = (token: string, body: unknown): RequestInit => ({
  method: "POST",
  headers: { ...json, Authorization: `Bearer ${token}` },
  body: JSON.stringify(body),
});

interface View {
  streams: { path: string; link_type: string; acked_offset: string }[];
  status: string;
  webhook?: { url: string; signing: { alg: string; kid: string; jwks_url: string } };
}
interface Claimed {
  wake_id: string;
  generation: number;
  token: string;
  streams: { path: string; acked_offset: string; tail_offset: string; has_pending: boolean }[];
  lease_ttl_ms: number;
}

async function view(id: string): Promise<View> {
  const res = await sub(id);
  expect(res.status).toBe(200);
  return (await res.json()) as View;
}

async function claim(id: string, worker: string): Promise<Response> {
  return sub(id, "/claim", { method: "POST", headers: json, body: JSON.stringify({ worker }) });
}

/** A pull-wake subscription over `root/*` with its own wake stream. */
async function pullSetup(leaseTtlMs = 30_000) {
  const root = freshPath("pw");
  const id = freshPath("sub");
  const wake = `${root}-wake/pool`;
  expect((await createStream(wake, [])).status).toBe(201);
  const created = await put(id, { type: "pull-wake", pattern: `${root}/*`, wake_stream: wake, lease_ttl_ms: leaseTtlMs });
  expect(created.status).toBe(201);
  return { root, id, wake };
}

async function wakeEvents(wake: string): Promise<{ subscription_id: string; generation: number; stream: string }[]> {
  const res = await stream(wake);
  return (await res.json()) as { subscription_id: string; generation: number; stream: string }[];
}

describe("subscription control APIs", () => {
  it("creates (201), re-confirms the same configuration (200), refuses another (409), reads and deletes (204)", async () => {
    const id = freshPath("sub");
    const config = { type: "webhook", pattern: "events/*", webhook: { url: "https://hooks.example/in" }, lease_ttl_ms: 5000, description: "d" };
    const created = await put(id, config);
    expect(created.status).toBe(201);
    const body = (await created.json()) as View & Record<string, unknown>;
    expect(body).toMatchObject({ id, subscription_id: id, type: "webhook", pattern: "events/*", lease_ttl_ms: 5000, status: "active", description: "d" });
    expect(body.webhook?.signing.alg).toBe("ed25519");
    expect(body.webhook?.signing.kid).toMatch(/^ds_/);
    expect(body.webhook?.signing.jwks_url).toBe("http://bus.test/v1/stream/__ds/jwks.json");
    expect(JSON.stringify(body)).not.toMatch(/secret/);
    // Same configuration, fields in another order: re-confirmed.
    expect(
      (await put(id, { description: "d", lease_ttl_ms: 5000, webhook: { url: "https://hooks.example/in" }, pattern: "events/*", type: "webhook" })).status,
    ).toBe(200);
    const other = await put(id, { ...config, lease_ttl_ms: 6000 });
    expect(other.status).toBe(409);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe("conflict");
    expect((await sub(id, "", { method: "DELETE" })).status).toBe(204);
    expect((await sub(id)).status).toBe(404);
    expect((await sub(id, "", { method: "DELETE" })).status).toBe(404);
    // Made again after the delete: a new subscription.
    expect((await put(id, { ...config, lease_ttl_ms: 6000 })).status).toBe(201);
  });

  it("lists the tenant's subscriptions a page at a time (a Dovetail extension); a deleted one leaves the list", async () => {
    const root = freshPath("list");
    const ids = [`${root}-a`, `${root}-b`, `${root}-c`];
    for (const id of ids) {
      const res = await sub(id, "", {
        method: "PUT",
        headers: json,
        body: JSON.stringify({ type: "pull-wake", pattern: `${root}/*`, wake_stream: `${root}-wake` }),
      });
      expect(res.status).toBe(201);
    }
    const listed = async (): Promise<string[]> => {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const res = await gatewayFetch(`/v1/stream/__ds/subscriptions?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
        expect(res.status).toBe(200);
        const page = (await res.json()) as { subscriptions: { id: string }[]; cursor: string | null };
        expect(page.subscriptions.length).toBeLessThanOrEqual(2);
        seen.push(...page.subscriptions.map((s) => s.id));
        cursor = page.cursor;
      } while (cursor !== null);
      return seen.filter((id) => id.startsWith(root));
    };
    expect(await listed()).toEqual(ids);
    expect((await sub(ids[1]!, "", { method: "DELETE" })).status).toBe(204);
    expect(await listed()).toEqual([ids[0], ids[2]]);
    expect((await gatewayFetch("/v1/stream/__ds/subscriptions?limit=0")).status).toBe(400);
  });

  it("serves the webhook public key as a JWK Set, without a credential", async () => {
    const { anonymousFetch } = await import("./helpers.ts");
    const res = await anonymousFetch("/v1/stream/__ds/jwks.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/jwk-set+json");
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    const { keys } = (await res.json()) as { keys: Record<string, string>[] };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", use: "sig", alg: "EdDSA" });
    expect(keys[0]!.kid).toMatch(/^ds_/);
    expect(keys[0]!.d).toBeUndefined();
  });

  it("refuses malformed configurations with invalid_field and unsafe webhook URLs with WEBHOOK_URL_REJECTED", async () => {
    const bad: unknown[] = [
      { type: "webhook", webhook: { url: "https://h.example" } }, // neither pattern nor streams
      { type: "push", pattern: "a/*" },
      { type: "webhook", pattern: "a/*" }, // no webhook
      { type: "pull-wake", pattern: "a/*" }, // no wake_stream
      { type: "pull-wake", pattern: "a/*", wake_stream: "a/wake" }, // wake stream inside its own pattern
      { type: "webhook", pattern: "a/*", webhook: { url: "https://h.example" }, lease_ttl_ms: 500 },
      { type: "webhook", pattern: "a/*", webhook: { url: "https://h.example" }, lease_ttl_ms: 600_001 },
      { type: "webhook", pattern: "a/[x]", webhook: { url: "https://h.example" } },
      { type: "webhook", streams: ["__ds/x"], webhook: { url: "https://h.example" } },
      { type: "webhook", pattern: "a/*", webhook: { url: "https://h.example" }, extra: 1 },
    ];
    for (const body of bad) {
      const res = await put(freshPath("bad"), body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_field");
    }
    // Not `npm run dev`: https only, and nothing local or private.
    for (const url of [
      "http://hooks.example/in",
      "http://localhost:9000/h",
      "http://127.0.0.1:9000/h",
      "https://10.0.0.1/h",
      "https://192.168.1.4/h",
      "https://172.16.0.1/h",
      "https://169.254.169.254/latest/meta-data",
      "https://[::1]/h",
      "https://[fe80::1]/h",
      "https://localhost/h",
      "ftp://hooks.example/",
    ]) {
      const res = await put(freshPath("bad"), { type: "webhook", pattern: "a/*", webhook: { url } });
      expect(res.status, url).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code, url).toBe("WEBHOOK_URL_REJECTED");
    }
  });

  it("links existing matching streams at their tails and adds and removes explicit streams", async () => {
    const root = freshPath("bf");
    await createStream(`${root}/a`, [{ n: 1 }, { n: 2 }]);
    await createStream(`${root}/deeper/b`, [{ n: 1 }]);
    const id = freshPath("sub");
    expect((await put(id, { type: "webhook", pattern: `${root}/*`, webhook: { url: "https://hooks.example/in" } })).status).toBe(201);
    let v = await view(id);
    // `*` is one segment: deeper/b is not linked. Linked at the tail: no history replayed.
    expect(v.streams).toEqual([{ path: `${root}/a`, link_type: "glob", acked_offset: encodeOffset(2) }]);

    const add = await sub(id, "/streams", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ streams: [`${root}/deeper/b`, `${root}/a`, `${root}/later`] }),
    });
    expect(add.status).toBe(204);
    v = await view(id);
    expect(v.streams).toEqual([
      { path: `${root}/a`, link_type: "explicit", acked_offset: encodeOffset(2) },
      { path: `${root}/deeper/b`, link_type: "explicit", acked_offset: encodeOffset(1) },
      { path: `${root}/later`, link_type: "explicit", acked_offset: encodeOffset(0) },
    ]);
    // Removing the explicit link of a stream the pattern matches leaves the glob link.
    expect((await sub(id, `/streams/${encodeURIComponent(`${root}/a`)}`, { method: "DELETE" })).status).toBe(204);
    expect((await sub(id, `/streams/${encodeURIComponent(`${root}/deeper/b`)}`, { method: "DELETE" })).status).toBe(204);
    expect((await sub(id, `/streams/${encodeURIComponent(`${root}/deeper/b`)}`, { method: "DELETE" })).status).toBe(204);
    v = await view(id);
    expect(v.streams.map((s) => [s.path, s.link_type])).toEqual([
      [`${root}/a`, "glob"],
      [`${root}/later`, "explicit"],
    ]);
  });

  it("needs admin to manage and consume (or admin) to read and claim; another tenant sees nothing", async () => {
    const id = freshPath("sub");
    const config = { type: "webhook", pattern: "x/*", webhook: { url: "https://hooks.example/in" } };
    const reader = await issueKey("default", ["consume:>", "subscribe:>"]);
    const auth = (key: string) => ({ Authorization: `Bearer ${key}`, ...json });
    const refused = await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, { method: "PUT", headers: auth(reader.key), body: JSON.stringify(config) });
    expect(refused.status).toBe(403);
    expect((await put(id, config)).status).toBe(201);
    expect((await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, { headers: auth(reader.key) })).status).toBe(200);
    const other = await issueKey(freshPath("tenant"), ["consume:>", "admin:>"]);
    expect((await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, { headers: auth(other.key) })).status).toBe(404);
    const none = await issueKey("default", ["subscribe:>"]);
    expect((await gatewayFetch(`/v1/stream/__ds/subscriptions/${id}`, { headers: auth(none.key) })).status).toBe(403);
  });
});

describe("pull-wake", () => {
  it("a stream created after the subscription is linked before its first append, which wakes the subscription", async () => {
    const { root, id, wake } = await pullSetup();
    const path = `${root}/new`;
    expect((await createStream(path, { event: "created" })).status).toBe(201);
    const events = await until(async () => {
      const e = await wakeEvents(wake);
      return e.length > 0 && e;
    }, "a wake event");
    expect(events).toEqual([expect.objectContaining({ type: "wake", subscription_id: id, stream: path, generation: 1 })]);
    const res = await claim(id, "w1");
    expect(res.status).toBe(200);
    const c = (await res.json()) as Claimed;
    expect(c.generation).toBe(1);
    expect(c.lease_ttl_ms).toBe(30_000);
    // Linked at the position before the append that created the stream.
    expect(c.streams).toEqual([{ path, link_type: "glob", acked_offset: encodeOffset(0), tail_offset: encodeOffset(1), has_pending: true }]);
  });

  it("claim, ALREADY_CLAIMED, heartbeat, ack done; release writes another wake; stale requests are FENCED and move nothing", async () => {
    const { root, id, wake } = await pullSetup();
    const path = `${root}/s`;
    await createStream(path, [{ n: 0 }, { n: 1 }]);
    const first = (await (await claim(id, "w1")).json()) as Claimed;
    const busy = await claim(id, "w2");
    expect(busy.status).toBe(409);
    expect(await busy.json()).toMatchObject({ error: { code: "ALREADY_CLAIMED", current_holder: "w1", generation: first.generation } });

    // Heartbeat with a partial ack.
    const beat = await sub(
      id,
      "/ack",
      withToken(first.token, { wake_id: first.wake_id, generation: first.generation, acks: [{ stream: path, offset: encodeOffset(1) }] }),
    );
    expect(beat.status).toBe(200);
    expect(await beat.json()).toEqual({ ok: true, next_wake: false });
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(1));

    // Refusals: nothing applied, the cursor stays at 1.
    const refusals: [RequestInit, number, string][] = [
      [withToken(first.token, { wake_id: "w_other", generation: first.generation, acks: [{ stream: path, offset: encodeOffset(2) }] }), 409, "FENCED"],
      [withToken(first.token, { wake_id: first.wake_id, generation: first.generation + 1, acks: [{ stream: path, offset: encodeOffset(2) }] }), 409, "FENCED"],
      [
        withToken(first.token, { wake_id: first.wake_id, generation: first.generation, acks: [{ stream: path, offset: encodeOffset(0) }] }),
        409,
        "INVALID_OFFSET",
      ],
      [
        withToken(first.token, { wake_id: first.wake_id, generation: first.generation, acks: [{ stream: path, offset: encodeOffset(99) }] }),
        409,
        "INVALID_OFFSET",
      ],
      [
        withToken(first.token, {
          wake_id: first.wake_id,
          generation: first.generation,
          acks: [
            { stream: path, offset: encodeOffset(2) },
            { stream: `${root}/unlinked`, offset: encodeOffset(1) },
          ],
          done: true,
        }),
        409,
        "INVALID_OFFSET",
      ],
      [withToken(first.token, { wake_id: first.wake_id, generation: first.generation, acks: [{ stream: path, offset: "nonsense" }] }), 409, "INVALID_OFFSET"],
      [withToken(`${first.token.slice(0, -4)}AAAA`, { wake_id: first.wake_id, generation: first.generation, done: true }), 401, "unauthorized"],
      [withToken("not-a-token", { wake_id: first.wake_id, generation: first.generation, done: true }), 401, "unauthorized"],
      [{ method: "POST", headers: json, body: JSON.stringify({ wake_id: first.wake_id, generation: first.generation, done: true }) }, 401, "unauthorized"],
      [withToken(first.token, { wake_id: first.wake_id, generation: "1", done: true }), 400, "invalid_field"],
    ];
    for (const [init, status, code] of refusals) {
      const res = await sub(id, "/ack", init);
      expect(res.status, String(init.body)).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    // A webhook route for a pull-wake subscription is refused too.
    expect((await sub(id, "/callback", withToken(first.token, { wake_id: first.wake_id, generation: first.generation, done: true }))).status).toBe(400);
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(1));

    // Release with work pending: a new wake event, a new generation; the old token is fenced.
    const before = (await wakeEvents(wake)).length;
    expect((await sub(id, "/release", withToken(first.token, { wake_id: first.wake_id, generation: first.generation }))).status).toBe(204);
    const events = await until(async () => {
      const e = await wakeEvents(wake);
      return e.length > before && e;
    }, "a second wake event");
    expect(events.at(-1)!.generation).toBe(first.generation + 1);
    const stale = await sub(
      id,
      "/ack",
      withToken(first.token, { wake_id: first.wake_id, generation: first.generation, acks: [{ stream: path, offset: encodeOffset(2) }], done: true }),
    );
    expect(stale.status).toBe(409);
    expect(((await stale.json()) as { error: { code: string } }).error.code).toBe("FENCED");
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(1));

    const second = (await (await claim(id, "w2")).json()) as Claimed;
    expect(second.generation).toBe(first.generation + 1);
    const done = await sub(
      id,
      "/ack",
      withToken(second.token, { wake_id: second.wake_id, generation: second.generation, acks: [{ stream: path, offset: encodeOffset(2) }], done: true }),
    );
    expect(await done.json()).toEqual({ ok: true, next_wake: false });
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(2));
    const idle = await claim(id, "w1");
    expect(idle.status).toBe(409);
    expect(((await idle.json()) as { error: { code: string } }).error.code).toBe("NO_PENDING_WORK");

    // An append right before a claim is seen by the claim.
    await append(path, { n: 2 });
    const third = await claim(id, "w1");
    expect(third.status).toBe(200);
    expect(((await third.json()) as Claimed).streams[0]!.tail_offset).toBe(encodeOffset(3));
  });

  it("a lease that runs out fences its holder and pending work is woken again with the next generation", async () => {
    const { root, id, wake } = await pullSetup(1000);
    const path = `${root}/lease`;
    await createStream(path, [{ n: 0 }]);
    const first = (await (await claim(id, "slow")).json()) as Claimed;
    const events0 = (await wakeEvents(wake)).length;
    // The alarm ends the lease after ~1 s and writes a new wake event.
    const events = await until(async () => {
      const e = await wakeEvents(wake);
      return e.length > events0 && e;
    }, "the wake after the lease");
    expect(events.at(-1)!.generation).toBe(first.generation + 1);
    const late = await sub(
      id,
      "/ack",
      withToken(first.token, { wake_id: first.wake_id, generation: first.generation, acks: [{ stream: path, offset: encodeOffset(1) }], done: true }),
    );
    expect(late.status).toBe(409);
    expect(((await late.json()) as { error: { code: string } }).error.code).toBe("FENCED");
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(0));
    const next = await claim(id, "fast");
    expect(next.status).toBe(200);
    expect(((await next.json()) as Claimed).generation).toBe(first.generation + 1);
  });

  it("a deleted topic drops its glob link and keeps an explicit one from the start; created again, it is linked from its first append", async () => {
    const { root, id } = await pullSetup();
    const globbed = `${root}/g`;
    const explicit = `${root}-x/e`;
    await createStream(globbed, [{ n: 0 }, { n: 1 }]);
    await createStream(explicit, [{ n: 0 }]);
    expect((await sub(id, "/streams", { method: "POST", headers: json, body: JSON.stringify({ streams: [explicit] }) })).status).toBe(204);
    expect((await view(id)).streams.map((s) => [s.path, s.acked_offset])).toEqual([
      [explicit, encodeOffset(1)], // existed when linked: at its tail
      [globbed, encodeOffset(0)], // created after the subscription: before its first append
    ]);
    for (const path of [globbed, explicit]) expect((await gatewayFetch(`/v1/topics/${encodeURIComponent(path)}`, { method: "DELETE" })).status).toBe(200);
    expect((await view(id)).streams).toEqual([{ path: explicit, link_type: "explicit", acked_offset: encodeOffset(0) }]);
    // Created again: its offsets start at 0 and it is linked before its first append (the wake of
    // the first creation is still unclaimed, so no second wake event is written: one in flight).
    await createStream(globbed, [{ n: "again" }]);
    const c = (await (await claim(id, "w")).json()) as Claimed;
    expect(c.streams.find((s) => s.path === globbed)).toMatchObject({ acked_offset: encodeOffset(0), tail_offset: encodeOffset(1), has_pending: true });
  });

  it("a token of another subscription, or a deleted one, is refused and moves nothing", async () => {
    const a = await pullSetup();
    const b = await pullSetup();
    await createStream(`${a.root}/x`, [{ n: 0 }]);
    await createStream(`${b.root}/x`, [{ n: 0 }]);
    const ca = (await (await claim(a.id, "w")).json()) as Claimed;
    const cb = (await (await claim(b.id, "w")).json()) as Claimed;
    // a's token on b's route: its subscription id does not match.
    const cross = await sub(
      b.id,
      "/ack",
      withToken(ca.token, { wake_id: cb.wake_id, generation: cb.generation, acks: [{ stream: `${b.root}/x`, offset: encodeOffset(1) }], done: true }),
    );
    expect(cross.status).toBe(401);
    expect((await view(b.id)).streams[0]!.acked_offset).toBe(encodeOffset(0));
    // Deleted: the in-flight ack fails.
    expect((await sub(a.id, "", { method: "DELETE" })).status).toBe(204);
    const gone = await sub(
      a.id,
      "/ack",
      withToken(ca.token, { wake_id: ca.wake_id, generation: ca.generation, acks: [{ stream: `${a.root}/x`, offset: encodeOffset(1) }], done: true }),
    );
    expect(gone.status).toBe(404);
  });
});

describe("durability and tenants", () => {
  it("a claimed wake survives eviction of the subscription object: its ack applies afterwards", async () => {
    const { root, id } = await pullSetup();
    const path = `${root}/e`;
    await createStream(path, [{ n: 0 }, { n: 1 }]);
    const c = (await (await claim(id, "w")).json()) as Claimed;
    await evictDurableObject(subscriptionStub(bindings, "default", id));
    const busy = await claim(id, "other");
    expect(await busy.json()).toMatchObject({ error: { code: "ALREADY_CLAIMED", current_holder: "w", generation: c.generation } });
    const done = await sub(
      id,
      "/ack",
      withToken(c.token, { wake_id: c.wake_id, generation: c.generation, acks: [{ stream: path, offset: encodeOffset(2) }], done: true }),
    );
    expect(await done.json()).toEqual({ ok: true, next_wake: false });
    await evictDurableObject(subscriptionStub(bindings, "default", id));
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(2));
  });

  it("a webhook that cannot be reached is retried on a schedule kept in storage and the alarm, across eviction", async () => {
    const root = freshPath("rt");
    const id = freshPath("sub");
    // `.invalid` never resolves (RFC 6761): every attempt fails at once.
    expect((await put(id, { type: "webhook", pattern: `${root}/*`, webhook: { url: "https://hooks.invalid/in" } })).status).toBe(201);
    await createStream(`${root}/a`, [{ n: 0 }]);
    await until(async () => (await view(id)).status === "failed", "status failed");
    const stub = subscriptionStub(bindings, "default", id);
    const read = () =>
      runInDurableObject(stub, async (_instance, state) => {
        const row = state.storage.sql.exec<{ json: string }>("SELECT json FROM ds_sub_state").one();
        return {
          saved: JSON.parse(row.json) as { retry: { attempt: number; nextAt: number } | null; generation: number },
          alarm: await state.storage.getAlarm(),
        };
      });
    const first = await read();
    expect(first.saved.retry?.attempt).toBeGreaterThanOrEqual(1);
    expect(first.alarm).toBe(first.saved.retry!.nextAt);
    await evictDurableObject(stub);
    const after = await read();
    expect(after.saved.retry?.nextAt).toBeGreaterThanOrEqual(first.saved.retry!.nextAt);
    expect(after.alarm).toBe(after.saved.retry!.nextAt);
    // The alarm keeps retrying the same wake: attempts grow, the generation does not.
    await until(async () => ((await read()).saved.retry?.attempt ?? 0) > first.saved.retry!.attempt, "another attempt", 10_000);
    expect((await read()).saved.generation).toBe(first.saved.generation);
    expect((await sub(id, "", { method: "DELETE" })).status).toBe(204);
  });

  it("a token names its tenant and subscription: one signed with another secret is refused, and a tenant's token never moves another's cursor", async () => {
    const id = freshPath("same");
    const other = await issueKey(freshPath("tenant"), ["publish:>", "consume:>", "admin:>"]);
    const asOther = (path: string, init: RequestInit = {}) =>
      gatewayFetch(`/v1/stream/${path}`, { ...init, headers: { ...json, ...(init.headers as Record<string, string>), Authorization: `Bearer ${other.key}` } });
    const root = freshPath("tn");
    for (const call of [stream, asOther]) {
      expect((await call(`${root}-wake/p`, { method: "PUT", headers: json, body: "[]" })).status).toBe(201);
      expect(
        (
          await call(`__ds/subscriptions/${id}`, {
            method: "PUT",
            headers: json,
            body: JSON.stringify({ type: "pull-wake", pattern: `${root}/*`, wake_stream: `${root}-wake/p` }),
          })
        ).status,
      ).toBe(201);
      expect((await call(`${root}/x`, { method: "PUT", headers: json, body: JSON.stringify([{ n: 0 }]) })).status).toBe(201);
    }
    const mine = (await (await claim(id, "w")).json()) as Claimed;
    const theirs = (await (await asOther(`__ds/subscriptions/${id}/claim`, { method: "POST", body: JSON.stringify({ worker: "w" }) })).json()) as Claimed;
    // Their token on the same (tenant-less) path acts on their subscription only.
    const ack = await sub(
      id,
      "/ack",
      withToken(theirs.token, { wake_id: theirs.wake_id, generation: theirs.generation, acks: [{ stream: `${root}/x`, offset: encodeOffset(1) }], done: true }),
    );
    expect(ack.status).toBe(200);
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(0));
    // A token claiming our tenant, signed with a secret that is not our subscription's.
    const forged = await new SignJWT({ tn: "default", sid: id, g: mine.generation, w: mine.wake_id })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("1h")
      .sign(new Uint8Array(32));
    const refused = await sub(
      id,
      "/ack",
      withToken(forged, { wake_id: mine.wake_id, generation: mine.generation, acks: [{ stream: `${root}/x`, offset: encodeOffset(1) }], done: true }),
    );
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect((await view(id)).streams[0]!.acked_offset).toBe(encodeOffset(0));
  });
});
