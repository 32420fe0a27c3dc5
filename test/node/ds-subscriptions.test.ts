/**
 * Durable Streams webhook subscriptions against the real bus process (scripts/dev.mjs, auth on),
 * with webhook receivers listening on 127.0.0.1 here (decision 027):
 *
 * - a receiver that is down for a while: the bus retries with backoff (1 s, 2 s, 4 s, ±20 %), the
 *   subscription reads `status: "failed"` meanwhile, then the receiver comes up and everything
 *   pending is delivered and acked, each message exactly once;
 * - the bus killed with SIGKILL while a wake is outstanding: after the restart the lease runs
 *   out, the old wake is FENCED, and a new generation delivers the pending work;
 * - every webhook request carries a valid Ed25519 signature over `<t>.<raw body>` with the key
 *   the JWK Set publishes;
 * - the time from an append to the webhook request (printed; recorded in docs/streams.md).
 */
import { createPublicKey, verify } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startBus, type BusProcess } from "../support/bus-process.ts";

let bus: BusProcess;

beforeAll(async () => {
  bus = await startBus({ auth: true });
}, 120_000);

afterAll(async () => {
  await bus?.stop();
});

interface Hook {
  at: number;
  raw: string;
  signature: string;
  body: {
    subscription_id: string;
    wake_id: string;
    generation: number;
    streams: { path: string; acked_offset: string; tail_offset: string; has_pending: boolean }[];
    callback_url: string;
    callback_token: string;
  };
}

/** A webhook receiver on 127.0.0.1 that records each request and answers with `answer(hook)`. */
class Receiver {
  readonly hooks: Hook[] = [];
  #server: Server | null = null;
  #waiters: (() => void)[] = [];
  answer: (hook: Hook) => unknown = () => ({});
  /** Answer every request with a 307 to this URL instead. */
  redirectTo: string | null = null;

  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async up(): Promise<void> {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const hook: Hook = { at: performance.now(), raw, signature: String(req.headers["webhook-signature"] ?? ""), body: JSON.parse(raw) as Hook["body"] };
        this.hooks.push(hook);
        for (const w of this.#waiters.splice(0)) w();
        if (this.redirectTo !== null) {
          res.writeHead(307, { location: this.redirectTo });
          res.end();
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(this.answer(hook)));
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.#server = server;
    expect((server.address() as AddressInfo).port).toBe(this.port);
  }

  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves with the first hook after the first `count` hooks. */
  async next(count: number, timeoutMs = 30_000): Promise<Hook> {
    const deadline = Date.now() + timeoutMs;
    while (this.hooks.length <= count) {
      if (Date.now() > deadline) throw new Error(`no webhook #${count + 1} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
    return this.hooks[count]!;
  }
}

const fresh = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("Authorization")) headers.set("Authorization", `Bearer ${bus.token}`);
  if (init.body !== undefined) headers.set("Content-Type", "application/json");
  return fetch(`${bus.url}/v1/stream/${path}`, { ...init, headers });
}

async function view(id: string): Promise<{ status: string; streams: { path: string; acked_offset: string }[] }> {
  const res = await api(`__ds/subscriptions/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; streams: { path: string; acked_offset: string }[] };
}

/** Verify a hook's signature with the bus's JWK Set. */
async function verifySignature(hook: Hook): Promise<boolean> {
  const m = /^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$/.exec(hook.signature);
  if (!m) return false;
  const { keys } = (await (await fetch(`${bus.url}/v1/stream/__ds/jwks.json`)).json()) as { keys: { kid: string; x: string }[] };
  const jwk = keys.find((k) => k.kid === m[2]);
  if (!jwk) return false;
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: jwk.x }, format: "jwk" });
  return verify(null, Buffer.from(`${m[1]}.${hook.raw}`), key, Buffer.from(m[3]!, "base64url"));
}

const offsetNumber = (token: string) => Number(token.split("_")[0]);

describe("webhook subscriptions against the bus process", () => {
  it("retries with backoff while the receiver is down (status failed), then delivers everything once it is up; nothing acked twice", async () => {
    const receiver = new Receiver(await freePort());
    const root = fresh("wh");
    const id = fresh("sub");
    const path = `${root}/a`;
    // Each wake is answered done: the bus acks exactly the tails the wake reported.
    receiver.answer = () => ({ done: true });
    const created = await api(`__ds/subscriptions/${id}`, {
      method: "PUT",
      body: JSON.stringify({ type: "webhook", pattern: `${root}/*`, webhook: { url: receiver.url }, lease_ttl_ms: 5000 }),
    });
    expect(created.status).toBe(201);

    expect((await api(path, { method: "PUT", body: JSON.stringify([{ n: 0 }]) })).status).toBe(201);
    // The receiver is down: attempts fail and the subscription says so.
    const failedAt = Date.now();
    for (;;) {
      if ((await view(id)).status === "failed") break;
      if (Date.now() - failedAt > 10_000) throw new Error("status never became failed");
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let n = 1; n < 20; n++) expect((await api(path, { method: "POST", body: JSON.stringify({ n }) })).status).toBe(204);
    // Down for ~3.5 s: attempts at ~0, ~1, ~3 s are refused; the one at ~7 s (±20 %) arrives.
    await new Promise((r) => setTimeout(r, 3_500));
    expect(receiver.hooks).toHaveLength(0);
    const upAt = performance.now();
    await receiver.up();
    const first = await receiver.next(0, 15_000);
    expect(first.at - upAt).toBeLessThan(8_000);
    expect(await verifySignature(first)).toBe(true);
    expect(first.body.subscription_id).toBe(id);
    expect(first.body.generation).toBe(1);
    expect(first.body.streams).toEqual([expect.objectContaining({ path, acked_offset: "0000000000000000_0000000000000000", has_pending: true })]);

    // Keep appending while the receiver acks: every message lands in exactly one wake.
    for (let n = 20; n < 60; n++) {
      expect((await api(path, { method: "POST", body: JSON.stringify({ n }) })).status).toBe(204);
      if (n % 10 === 0) await new Promise((r) => setTimeout(r, 150));
    }
    const deadline = Date.now() + 20_000;
    for (;;) {
      const v = await view(id);
      if (v.status === "active" && v.streams[0] && offsetNumber(v.streams[0].acked_offset) === 60) break;
      if (Date.now() > deadline) throw new Error(`not all acked: ${JSON.stringify(v)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The wakes' ranges [acked, tail) tile [0, 60): no message twice, none missed.
    const ranges = receiver.hooks.map((h) => h.body.streams[0]!).map((s) => [offsetNumber(s.acked_offset), offsetNumber(s.tail_offset)] as const);
    let covered = 0;
    for (const [from, to] of ranges) {
      expect(from).toBe(covered);
      expect(to).toBeGreaterThan(from);
      covered = to;
    }
    expect(covered).toBe(60);
    const generations = receiver.hooks.map((h) => h.body.generation);
    expect(generations).toEqual([...generations].sort((a, b) => a - b));
    expect(new Set(generations).size).toBe(generations.length);
    for (const hook of receiver.hooks) expect(await verifySignature(hook)).toBe(true);
    await receiver.down();
  }, 90_000);

  it("does not follow a redirect (it could lead where the URL check would refuse): the attempt fails", async () => {
    const receiver = new Receiver(await freePort());
    const elsewhere = new Receiver(await freePort());
    await Promise.all([receiver.up(), elsewhere.up()]);
    receiver.redirectTo = elsewhere.url;
    const root = fresh("redir");
    const id = fresh("sub");
    expect(
      (
        await api(`__ds/subscriptions/${id}`, {
          method: "PUT",
          body: JSON.stringify({ type: "webhook", pattern: `${root}/*`, webhook: { url: receiver.url } }),
        })
      ).status,
    ).toBe(201);
    await api(`${root}/a`, { method: "PUT", body: JSON.stringify([{ n: 0 }]) });
    await receiver.next(0);
    const deadline = Date.now() + 10_000;
    while ((await view(id)).status !== "failed") {
      if (Date.now() > deadline) throw new Error("a redirected attempt did not count as failed");
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(elsewhere.hooks).toHaveLength(0);
    await api(`__ds/subscriptions/${id}`, { method: "DELETE" });
    await Promise.all([receiver.down(), elsewhere.down()]);
  }, 60_000);

  it("after the bus is killed with SIGKILL during an outstanding wake, the lease runs out, the old wake is FENCED and a new generation delivers", async () => {
    const receiver = new Receiver(await freePort());
    await receiver.up();
    const root = fresh("kill");
    const id = fresh("sub");
    const path = `${root}/a`;
    expect(
      (
        await api(`__ds/subscriptions/${id}`, {
          method: "PUT",
          body: JSON.stringify({ type: "webhook", pattern: `${root}/*`, webhook: { url: receiver.url }, lease_ttl_ms: 2000 }),
        })
      ).status,
    ).toBe(201);
    expect((await api(path, { method: "PUT", body: JSON.stringify([{ n: 0 }, { n: 1 }]) })).status).toBe(201);
    // Answered without done: the wake stays outstanding until a callback or the lease's end.
    const outstanding = await receiver.next(0);
    expect(outstanding.body.generation).toBe(1);
    // Let the bus record the answer (a wake it never saw answered is sent again, same generation).
    await new Promise((r) => setTimeout(r, 500));

    await bus.restart(); // SIGKILL, then start on the same state and port
    const renewed = await receiver.next(1, 30_000);
    expect(renewed.body.generation).toBe(2);
    expect(renewed.body.wake_id).not.toBe(outstanding.body.wake_id);
    expect(renewed.body.streams[0]).toMatchObject({
      path,
      acked_offset: "0000000000000000_0000000000000000",
      tail_offset: "0000000000000002_0000000000000000",
    });

    const ack = (hook: Hook) =>
      fetch(hook.body.callback_url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${hook.body.callback_token}` },
        body: JSON.stringify({
          wake_id: hook.body.wake_id,
          generation: hook.body.generation,
          acks: [{ stream: path, offset: hook.body.streams[0]!.tail_offset }],
          done: true,
        }),
      });
    const stale = await ack(outstanding);
    expect(stale.status).toBe(409);
    expect(((await stale.json()) as { error: { code: string } }).error.code).toBe("FENCED");
    expect((await view(id)).streams[0]!.acked_offset).toBe("0000000000000000_0000000000000000");
    const fresh2 = await ack(renewed);
    expect(fresh2.status).toBe(200);
    expect(await fresh2.json()).toEqual({ ok: true, next_wake: false });
    expect((await view(id)).streams[0]!.acked_offset).toBe("0000000000000002_0000000000000000");
    await receiver.down();
  }, 120_000);

  it("measures wakes per second across 1,000 streams matched by one pattern; every stream ends acked at its tail", async () => {
    const STREAMS = 1000;
    // Its own bus, open: the development JWT's rate limit (1,000 requests per 10 s) would throttle the load.
    const open = await startBus();
    const openApi = (path: string, init: RequestInit = {}) =>
      fetch(`${open.url}/v1/stream/${path}`, { ...init, headers: { "Content-Type": "application/json" } });
    const receiver = new Receiver(await freePort());
    receiver.answer = () => ({ done: true });
    await receiver.up();
    const root = fresh("many");
    const id = fresh("sub");
    expect(
      (
        await openApi(`__ds/subscriptions/${id}`, {
          method: "PUT",
          body: JSON.stringify({ type: "webhook", pattern: `${root}/*`, webhook: { url: receiver.url } }),
        })
      ).status,
    ).toBe(201);
    const paths = Array.from({ length: STREAMS }, (_, i) => `${root}/s${i}`);
    const tails = new Map<string, number>();
    const run = async (jobs: (() => Promise<void>)[], concurrency: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < jobs.length) await jobs[next++]!();
        }),
      );
    };
    // Each stream is created by an append, so each is linked before it and wakes the subscription.
    const t0 = performance.now();
    await run(
      paths.map((path) => async () => {
        expect((await openApi(path, { method: "PUT", body: JSON.stringify([{ n: 0 }]) })).status).toBe(201);
        tails.set(path, 1);
      }),
      20,
    );
    const createdMs = performance.now() - t0;
    // Then 5 s of appends to streams picked at random.
    const hooksBefore = receiver.hooks.length;
    const t1 = performance.now();
    let appends = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (performance.now() - t1 < 5_000) {
          const path = paths[Math.floor(Math.random() * STREAMS)]!;
          expect((await openApi(path, { method: "POST", body: JSON.stringify({ n: 1 }) })).status).toBe(204);
          tails.set(path, (tails.get(path) ?? 0) + 1);
          appends++;
        }
      }),
    );
    const appendMs = performance.now() - t1;
    const wakes = receiver.hooks.length - hooksBefore;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const v = (await (await openApi(`__ds/subscriptions/${id}`)).json()) as Awaited<ReturnType<typeof view>>;
      const behind = v.streams.filter((s) => offsetNumber(s.acked_offset) !== tails.get(s.path));
      if (v.streams.length === STREAMS && behind.length === 0) break;
      if (Date.now() > deadline) throw new Error(`${behind.length} streams not acked at their tails, ${v.streams.length} linked`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const drainedMs = performance.now() - t1;
    console.log(
      `${STREAMS} streams under one pattern: created in ${(createdMs / 1000).toFixed(1)} s; ${appends} appends in ${(appendMs / 1000).toFixed(1)} s ` +
        `(${Math.round((appends * 1000) / appendMs)}/s) brought ${wakes} wakes (${((wakes * 1000) / appendMs).toFixed(1)} wakes/s, ` +
        `${(appends / Math.max(1, wakes)).toFixed(1)} appends per wake); all acked ${(drainedMs / 1000).toFixed(1)} s after the appends began`,
    );
    await receiver.down();
    await open.stop();
  }, 240_000);

  it("measures the time from an append to its webhook request", async () => {
    const receiver = new Receiver(await freePort());
    receiver.answer = () => ({ done: true });
    await receiver.up();
    const root = fresh("lat");
    const id = fresh("sub");
    const path = `${root}/a`;
    await api(`__ds/subscriptions/${id}`, { method: "PUT", body: JSON.stringify({ type: "webhook", streams: [path], webhook: { url: receiver.url } }) });
    await api(path, { method: "PUT", body: "[]" });
    const samples: number[] = [];
    for (let i = 0; i < 200; i++) {
      const count = receiver.hooks.length;
      const t0 = performance.now();
      expect((await api(path, { method: "POST", body: JSON.stringify({ i }) })).status).toBe(204);
      const hook = await receiver.next(count, 10_000);
      samples.push(hook.at - t0);
      // Wait for the done-ack to land so the next append starts a fresh wake.
      await new Promise((r) => setTimeout(r, 60));
    }
    samples.sort((a, b) => a - b);
    const p = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(1);
    console.log(`append → webhook request: p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${p(1)} ms (${samples.length} appends, local bus)`);
    expect(samples).toHaveLength(200);
    await receiver.down();
  }, 120_000);
});
