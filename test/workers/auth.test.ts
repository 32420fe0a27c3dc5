/**
 * Units of the credential code, inside workerd (WebCrypto as deployed): the topic pattern
 * matcher, API key format and hashing, JWT verification (HS256, EdDSA, ES256; exp, nbf, aud,
 * iss), and the token bucket.
 */
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { DovetailError } from "../../protocol/errors.ts";
import { generateApiKey, hashApiKey, parseApiKey, sameHash } from "../../protocol/api-key.ts";
import { jwtConfigFromEnv, verifyJwt } from "../../workers/auth/jwt.ts";
import { allows, parseScope, patternProblem, topicMatches } from "../../protocol/scopes.ts";
import { admitFrame, REFUSAL_BURST, newFrameLimitState, takeTokens, fullBucket } from "../../objects/frame-limiter.ts";

describe("topic patterns", () => {
  const cases: [string, string, boolean][] = [
    ["agents.*", "agents.planner", true],
    ["agents.*", "agents.planner.logs", false],
    ["agents.*", "agents", false],
    ["agents.*", "agents/planner", false],
    ["team-a.>", "team-a.jobs", true],
    ["team-a.>", "team-a.jobs/done.x", true],
    ["team-a.>", "team-a", false],
    ["team-a.>", "team-b.jobs", false],
    [">", "anything.at/all", true],
    ["*", "one", true],
    ["*", "one.two", false],
    ["a.*.c", "a.b.c", true],
    ["a.*.c", "a.b.d", false],
    ["exact", "exact", true],
    ["exact", "Exact", false],
    ["a/b", "a.b", false],
  ];
  for (const [pattern, topic, expected] of cases) {
    it(`${pattern} ${expected ? "matches" : "does not match"} ${topic}`, () => {
      expect(patternProblem(pattern)).toBeNull();
      expect(topicMatches(pattern, topic)).toBe(expected);
    });
  }

  it("rejects malformed patterns and scopes", () => {
    expect(patternProblem("a.>.b")).toMatch(/last/);
    expect(patternProblem("a..b")).not.toBeNull();
    expect(patternProblem("a.b*")).not.toBeNull();
    expect(patternProblem("")).not.toBeNull();
    expect(parseScope("write:>")).toMatch(/action/);
    expect(parseScope("admin")).toEqual({ action: "admin", pattern: ">" });
  });

  it("needs a `>` scope to act on every topic (admin API)", () => {
    const scopes = [{ action: "admin" as const, pattern: "team-a.>" }];
    expect(allows(scopes, "admin", "team-a.x")).toBe(true);
    expect(allows(scopes, "admin")).toBe(false);
    expect(allows([{ action: "admin", pattern: ">" }], "admin")).toBe(true);
  });
});

describe("API keys", () => {
  it("round-trips the id and hashes to a stable hex digest", async () => {
    const { id, key } = generateApiKey();
    expect(parseApiKey(key)).toEqual({ id });
    expect(parseApiKey(`${key}x`)).toBeNull();
    expect(parseApiKey("dvt_short")).toBeNull();
    const h = await hashApiKey(key);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(sameHash(h, await hashApiKey(key))).toBe(true);
    expect(sameHash(h, await hashApiKey(generateApiKey().key))).toBe(false);
  });
});

describe("JWT verification", () => {
  const secret = "unit-test-secret-0123456789abcdef";
  const hsConfig = jwtConfigFromEnv({ DOVETAIL_JWT_SECRET: secret });
  const now = () => Math.floor(Date.now() / 1000);
  const claims = { tenant: "team-a", scope: "publish:agents.* subscribe:>" };
  const hs = (edit: (j: SignJWT) => SignJWT = (j) => j, key = secret) =>
    edit(
      new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256" })
        .setSubject("svc")
        .setIssuer("dovetail")
        .setAudience("dovetail")
        .setExpirationTime(now() + 60),
    ).sign(new TextEncoder().encode(key));

  async function refusal(token: string, config = hsConfig): Promise<string> {
    const e = await verifyJwt(token, config).then(
      () => null,
      (error: unknown) => error,
    );
    expect(e).toBeInstanceOf(DovetailError);
    expect((e as DovetailError).code).toBe("unauthorized");
    return (e as DovetailError).message;
  }

  it("accepts a valid HS256 token and reads tenant and scopes", async () => {
    const c = await verifyJwt(await hs(), hsConfig);
    expect(c).toMatchObject({ id: "jwt:dovetail:svc", kind: "jwt", tenant: "team-a" });
    expect(c.scopes).toEqual([
      { action: "publish", pattern: "agents.*" },
      { action: "subscribe", pattern: ">" },
    ]);
  });

  it("refuses a bad signature, expired, not yet valid, wrong audience, wrong issuer, no exp", async () => {
    expect(await refusal(await hs(undefined, "another-secret-another-secret-00"))).toMatch(/signature/);
    expect(await refusal(await hs((j) => j.setExpirationTime(now() - 60)))).toMatch(/expired/);
    expect(await refusal(await hs((j) => j.setNotBefore(now() + 600)))).toMatch(/not yet valid/);
    expect(await refusal(await hs((j) => j.setAudience("someone-else")))).toMatch(/audience/);
    expect(await refusal(await hs((j) => j.setIssuer("mallory")))).toMatch(/issuer/);
    const noExp = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("svc")
      .setIssuer("dovetail")
      .setAudience("dovetail")
      .sign(new TextEncoder().encode(secret));
    expect(await refusal(noExp)).toMatch(/exp/);
    expect(await refusal("a.b.c")).toMatch(/malformed/);
  });

  it("refuses `alg: none` and algorithms without configured keys", async () => {
    const header = btoa(JSON.stringify({ alg: "none" })).replace(/=+$/, "");
    const body = btoa(JSON.stringify({ ...claims, sub: "x", iss: "dovetail", aud: "dovetail", exp: now() + 60 })).replace(/=+$/, "");
    expect(await refusal(`${header}.${body}.`)).toMatch(/algorithm/);
    expect(await refusal(await hs(), jwtConfigFromEnv({}))).toMatch(/DOVETAIL_JWT_SECRET/);
  });

  for (const alg of ["EdDSA", "ES256"] as const) {
    it(`accepts ${alg} tokens signed by a configured public key, and only those`, async () => {
      const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
      const other = await generateKeyPair(alg, { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg };
      const config = jwtConfigFromEnv({ DOVETAIL_JWT_PUBLIC_KEYS: JSON.stringify({ keys: [jwk] }) });
      const sign = (key: CryptoKey) =>
        new SignJWT(claims)
          .setProtectedHeader({ alg, kid: "k1" })
          .setSubject("svc")
          .setIssuer("dovetail")
          .setAudience("dovetail")
          .setExpirationTime(now() + 60)
          .sign(key);
      expect((await verifyJwt(await sign(privateKey), config)).tenant).toBe("team-a");
      expect(await refusal(await sign(other.privateKey), config)).toMatch(/signature|signed/);
    });
  }
});

describe("token buckets", () => {
  it("admits a burst, then refills at the rate", () => {
    const b = fullBucket(2, 0);
    expect(takeTokens(b, 1, 2, 1, 0)).toBe(0);
    expect(takeTokens(b, 1, 2, 1, 0)).toBe(0);
    expect(takeTokens(b, 1, 2, 1, 0)).toBe(1000);
    expect(takeTokens(b, 1, 2, 1, 1000)).toBe(0);
  });

  it("asks for 1008 once the refusal budget is spent", () => {
    const limits = { framesPerSecond: 1, frameBurst: 1, bytesPerSecond: 1e6, byteBurst: 1e6 };
    const state = newFrameLimitState(limits, 0);
    expect(admitFrame(state, limits, 10, 0)).toEqual({ ok: true });
    let last = admitFrame(state, limits, 10, 0);
    for (let i = 1; i < REFUSAL_BURST; i++) last = admitFrame(state, limits, 10, 0);
    expect(last).toMatchObject({ ok: false, close: false });
    expect(admitFrame(state, limits, 10, 0)).toMatchObject({ ok: false, close: true });
  });

  it("closes a flood even when refilled tokens admit frames between refusals", () => {
    // 100 frames/s allowed, 1,000 sent: one in ten is admitted, and the refusals still add up.
    const limits = { framesPerSecond: 100, frameBurst: 1, bytesPerSecond: 1e9, byteBurst: 1e9 };
    const state = newFrameLimitState(limits, 0);
    let admitted = 0;
    let closedAtMs = -1;
    for (let t = 0; t < 10_000 && closedAtMs < 0; t++) {
      const v = admitFrame(state, limits, 10, t);
      if (v.ok) admitted++;
      else if (v.close) closedAtMs = t;
    }
    expect(admitted).toBeGreaterThan(10);
    expect(closedAtMs).toBeGreaterThan(0);
    expect(closedAtMs).toBeLessThan(1000);
  });

  it("never closes a client that waits retryAfterMs after each refusal, however long it runs", () => {
    const limits = { framesPerSecond: 5, frameBurst: 5, bytesPerSecond: 1e9, byteBurst: 1e9 };
    const state = newFrameLimitState(limits, 0);
    let t = 0;
    let admitted = 0;
    // A pipeline of 32 frames each time, as the SDK sends before its first refusal comes back.
    for (let round = 0; round < 200; round++) {
      let wait = 0;
      for (let i = 0; i < (round === 0 ? 32 : 1); i++) {
        const v = admitFrame(state, limits, 10, t);
        if (v.ok) admitted++;
        else {
          expect(v.close).toBe(false);
          wait = Math.max(wait, v.retryAfterMs);
        }
      }
      t += Math.max(wait, 1);
    }
    expect(admitted).toBeGreaterThan(100);
  });
});
