/**
 * `verifyWebhook` (`@dovetail/sdk/webhooks`) on Node's WebCrypto, against signatures made here the
 * way the bus makes them (objects/subscription.ts: Ed25519 over `<t>.<raw body>`, unpadded
 * base64url, `t=…,kid=…,ed25519=…`): what it accepts, and each thing it refuses. The bus's own
 * signatures are verified inside workerd by test/workers/webhook-agent.test.ts.
 */
import { describe, expect, it } from "vitest";
import { DovetailError } from "@dovetail/sdk";
import { verifyWebhook, type VerifyWebhookOptions } from "@dovetail/sdk/webhooks";

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");

async function signer(kid: string) {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const { x } = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
  return {
    jwk: { kty: "OKP", crv: "Ed25519", kid, use: "sig", alg: "EdDSA", x: x! },
    async sign(raw: string, t = Math.floor(Date.now() / 1000)): Promise<string> {
      const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, new TextEncoder().encode(`${t}.${raw}`)));
      return `t=${t},kid=${kid},ed25519=${b64url(sig)}`;
    },
  };
}

const wake = (id = "orders-agent") =>
  JSON.stringify({
    subscription_id: id,
    wake_id: "w_1",
    generation: 3,
    streams: [
      {
        path: "orders/a",
        link_type: "glob",
        acked_offset: "0000000000000000_0000000000000000",
        tail_offset: "0000000000000002_0000000000000000",
        has_pending: true,
      },
    ],
    callback_url: "https://bus.example/v1/stream/__ds/subscriptions/orders-agent/callback",
    callback_token: "tok",
  });

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DovetailError);
  expect((error as DovetailError).code).toBe("unauthorized");
  return (error as DovetailError).message;
}

describe("verifyWebhook", () => {
  it("accepts a Request or Node-style headers and body signed with a key of the JWK Set, and answers the wake", async () => {
    const key = await signer("ds_k1");
    const raw = wake();
    const signature = await key.sign(raw);
    const options: VerifyWebhookOptions = { jwks: { keys: [key.jwk] }, subscriptionId: "orders-agent" };
    const fromRequest = await verifyWebhook(
      new Request("https://agent.example/", { method: "POST", headers: { "Webhook-Signature": signature }, body: raw }),
      options,
    );
    expect(fromRequest.body.generation).toBe(3);
    expect(fromRequest.kid).toBe("ds_k1");
    expect(fromRequest.raw).toBe(raw);
    // node:http's IncomingMessage headers: lower-case names; the body as bytes.
    const fromNode = await verifyWebhook({ headers: { "webhook-signature": signature }, body: new TextEncoder().encode(raw) }, options);
    expect(fromNode.body.streams[0]!.path).toBe("orders/a");
  });

  it("refuses a changed body, a changed signature, another key, a stale or future timestamp, another subscription, a missing header", async () => {
    const key = await signer("ds_k1");
    const other = await signer("ds_k1");
    const raw = wake();
    const signature = await key.sign(raw);
    const options: VerifyWebhookOptions = { jwks: { keys: [key.jwk] }, subscriptionId: "orders-agent", maxSkewMs: 60_000 };
    const check = (body: string, sig: string | null, extra: Partial<VerifyWebhookOptions> = {}) =>
      refusal(verifyWebhook({ headers: sig === null ? {} : { "webhook-signature": sig }, body }, { ...options, ...extra }));
    expect(await check(raw.replace('"generation":3', '"generation":4'), signature)).toMatch(/does not match/);
    expect(
      await check(
        raw,
        signature.replace(/ed25519=./, (m) => (m.endsWith("A") ? `${m.slice(0, -1)}B` : `${m.slice(0, -1)}A`)),
      ),
    ).toMatch(/does not match/);
    expect(await check(raw, await other.sign(raw))).toMatch(/does not match/);
    expect(await check(raw, (await key.sign(raw)).replace("kid=ds_k1", "kid=ds_k2"))).toMatch(/no Ed25519 key ds_k2/);
    const now = Math.floor(Date.now() / 1000);
    expect(await check(raw, await key.sign(raw, now - 120))).toMatch(/replay window/);
    expect(await check(raw, await key.sign(raw, now + 120))).toMatch(/replay window/);
    // The same stale signature is accepted with a wider window: the window is the only reason.
    await expect(
      verifyWebhook({ headers: { "webhook-signature": await key.sign(raw, now - 120) }, body: raw }, { ...options, maxSkewMs: 300_000 }),
    ).resolves.toBeTruthy();
    expect(await check(wake("someone-else"), await key.sign(wake("someone-else")))).toMatch(/for subscription someone-else/);
    expect(await check(raw, null)).toMatch(/no Webhook-Signature/);
    expect(await check(raw, "v1,abc")).toMatch(/not t=/);
  });

  it("fetches the JWK Set from jwksUrl once, and again for a kid it does not hold", async () => {
    const first = await signer("ds_first");
    const second = await signer("ds_second");
    let keys = [first.jwk];
    const fetched: string[] = [];
    const fetchJwks = async (url: string | URL | Request) => {
      fetched.push(String(url));
      return Response.json({ keys });
    };
    const jwksUrl = `https://bus-${Math.random().toString(36).slice(2)}.example/v1/stream/__ds/jwks.json`;
    const raw = wake();
    const verify = async (key: typeof first) =>
      verifyWebhook({ headers: { "webhook-signature": await key.sign(raw) }, body: raw }, { jwksUrl, fetch: fetchJwks });
    await verify(first);
    await verify(first);
    expect(fetched).toEqual([jwksUrl]);
    keys = [second.jwk];
    expect((await verify(second)).kid).toBe("ds_second");
    expect(fetched).toHaveLength(2);
  });
});
