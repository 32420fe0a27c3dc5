/**
 * JWTs signed by the operator, verified with `jose`:
 * - HS256 with the shared secret `DOVETAIL_JWT_SECRET` (`wrangler secret put DOVETAIL_JWT_SECRET`);
 * - EdDSA (Ed25519) and ES256 with the public keys in `DOVETAIL_JWT_PUBLIC_KEYS` (a JWKS, JSON).
 *
 * Checked: signature, `exp` (required), `nbf`, `aud` (`DOVETAIL_JWT_AUDIENCE`, default
 * `dovetail`), `iss` (`DOVETAIL_JWT_ISSUER`, default `dovetail`). Claims the bus reads: `sub`
 * (required), `tenant` (required), `scope` (space-separated scopes, OAuth style) or `scopes`
 * (array), and optional `rate` (per-token rate overrides, see ./credential.ts).
 *
 * @example
 * const credential = await verifyJwt(token, jwtConfigFromEnv(env));
 * credential.tenant // "team-a"
 */
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from "jose";
import { DovetailError } from "../../protocol/errors.ts";
import { rateOverridesSchema, rateWith, TENANT_NAME, type Credential } from "../../protocol/credential.ts";
import { parseScopes } from "../../protocol/scopes.ts";

export interface JwtEnv {
  DOVETAIL_JWT_SECRET?: string;
  DOVETAIL_JWT_PUBLIC_KEYS?: string;
  DOVETAIL_JWT_ISSUER?: string;
  DOVETAIL_JWT_AUDIENCE?: string;
}

export const DEFAULT_JWT_ISSUER = "dovetail";
export const DEFAULT_JWT_AUDIENCE = "dovetail";
/** Clock skew tolerated on `exp` and `nbf`. */
export const JWT_CLOCK_TOLERANCE_S = 5;

export interface JwtConfig {
  secret: Uint8Array | null;
  publicKeys: ReturnType<typeof createLocalJWKSet> | null;
  issuer: string;
  audience: string;
}

let cached: { key: string; config: JwtConfig } | null = null;

/** Build (once per isolate and configuration) the verification keys from the environment. */
export function jwtConfigFromEnv(env: JwtEnv): JwtConfig {
  const key = [env.DOVETAIL_JWT_SECRET, env.DOVETAIL_JWT_PUBLIC_KEYS, env.DOVETAIL_JWT_ISSUER, env.DOVETAIL_JWT_AUDIENCE].join("\u0000");
  if (cached?.key === key) return cached.config;
  let publicKeys: JwtConfig["publicKeys"] = null;
  if (env.DOVETAIL_JWT_PUBLIC_KEYS) {
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(env.DOVETAIL_JWT_PUBLIC_KEYS) as JSONWebKeySet;
    } catch (cause) {
      throw new Error('DOVETAIL_JWT_PUBLIC_KEYS must be a JWKS in JSON: {"keys":[...]}', { cause });
    }
    publicKeys = createLocalJWKSet(jwks);
  }
  const config: JwtConfig = {
    secret: env.DOVETAIL_JWT_SECRET ? new TextEncoder().encode(env.DOVETAIL_JWT_SECRET) : null,
    publicKeys,
    issuer: env.DOVETAIL_JWT_ISSUER || DEFAULT_JWT_ISSUER,
    audience: env.DOVETAIL_JWT_AUDIENCE || DEFAULT_JWT_AUDIENCE,
  };
  cached = { key, config };
  return config;
}

/** Does `text` look like a compact JWS (three base64url parts)? */
export function looksLikeJwt(text: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(text);
}

function unauthorized(message: string, cause?: unknown): DovetailError {
  return new DovetailError("unauthorized", message, {}, { cause });
}

function explain(error: unknown): DovetailError {
  if (error instanceof errors.JWTExpired) return unauthorized("token expired (exp)", error);
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "nbf") return unauthorized("token not yet valid (nbf)", error);
    if (error.claim === "aud") return unauthorized("token audience (aud) is not this bus", error);
    if (error.claim === "iss") return unauthorized("token issuer (iss) is not trusted", error);
    if (error.claim === "exp") return unauthorized("token has no expiry (exp is required)", error);
    return unauthorized(`token claim ${error.claim} rejected: ${error.reason}`, error);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return unauthorized("token signature is not valid", error);
  if (error instanceof errors.JOSEAlgNotAllowed) return unauthorized("token algorithm is not accepted", error);
  if (error instanceof errors.JWKSNoMatchingKey) return unauthorized("token was not signed by a configured key", error);
  return unauthorized("token is malformed", error);
}

/** Verify a JWT and turn it into a Credential, or throw `unauthorized` saying why. */
export async function verifyJwt(token: string, config: JwtConfig): Promise<Credential> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch (error) {
    throw unauthorized("token is malformed", error);
  }
  const options = { issuer: config.issuer, audience: config.audience, requiredClaims: ["exp", "sub"], clockTolerance: JWT_CLOCK_TOLERANCE_S };
  let payload: JWTPayload;
  try {
    if (alg === "HS256") {
      if (!config.secret) throw unauthorized("HS256 tokens are not accepted: DOVETAIL_JWT_SECRET is not set");
      payload = (await jwtVerify(token, config.secret, { ...options, algorithms: ["HS256"] })).payload;
    } else if (alg === "EdDSA" || alg === "Ed25519" || alg === "ES256") {
      if (!config.publicKeys) throw unauthorized(`${alg} tokens are not accepted: DOVETAIL_JWT_PUBLIC_KEYS is not set`);
      payload = (await jwtVerify(token, config.publicKeys, { ...options, algorithms: ["EdDSA", "Ed25519", "ES256"] })).payload;
    } else {
      throw unauthorized(`token algorithm ${JSON.stringify(alg ?? null).slice(0, 20)} is not accepted (HS256, EdDSA, ES256)`);
    }
  } catch (error) {
    throw error instanceof DovetailError ? error : explain(error);
  }
  const tenant = payload.tenant;
  if (typeof tenant !== "string" || !TENANT_NAME.test(tenant)) throw unauthorized("token has no valid `tenant` claim");
  const rawScopes = typeof payload.scope === "string" ? payload.scope.split(" ").filter(Boolean) : Array.isArray(payload.scopes) ? payload.scopes : [];
  const scopes = parseScopes(rawScopes);
  if (typeof scopes === "string") throw unauthorized(`token scopes: ${scopes}`);
  const rate = rateOverridesSchema.safeParse(payload.rate ?? {});
  if (!rate.success) throw unauthorized("token `rate` claim is not valid");
  return {
    id: `jwt:${payload.iss}:${payload.sub}`,
    kind: "jwt",
    tenant,
    scopes,
    rate: rateWith(rate.data),
    expiresAt: (payload.exp as number) * 1000,
  };
}
