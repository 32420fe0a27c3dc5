/**
 * SubscriptionSigning: the deployment's webhook signing key (Durable Streams protocol 6.5), one
 * Durable Object named {@link SIGNING_OBJECT_NAME}. The Ed25519 key pair is made with WebCrypto on
 * first use and kept in this object's storage, so it survives restarts and deploys; its `kid` is
 * `ds_` and the key's JWK thumbprint (RFC 7638). The gateway serves {@link jwks} at
 * `/v1/stream/__ds/jwks.json`; subscription objects take the private key once per life with
 * {@link privateKey} and sign in memory (objects/subscription.ts). Decision 027.
 *
 * @example
 * const signing = env.DS_SIGNING.get(env.DS_SIGNING.idFromName(SIGNING_OBJECT_NAME));
 * const { keys } = await signing.jwks();
 */
import { DurableObject } from "cloudflare:workers";
import { calculateJwkThumbprint, type JWK } from "jose";
import { SIGNING_OBJECT_NAME } from "../protocol/ds-subscriptions.ts";

export { SIGNING_OBJECT_NAME };

/** A public key as the JWK Set lists it. */
export interface PublicSigningJwk {
  kty: "OKP";
  crv: "Ed25519";
  kid: string;
  use: "sig";
  alg: "EdDSA";
  x: string;
}

export interface SigningKey {
  kid: string;
  /** The private JWK (`d` and `x`), for `crypto.subtle.importKey("jwk", …, "Ed25519")`. */
  privateJwk: JsonWebKey;
}

interface StoredKey {
  kid: string;
  privateJwk: JsonWebKey;
  publicJwk: PublicSigningJwk;
}

const KEY_ENTRY = "ed25519-key";

export class SubscriptionSigning extends DurableObject {
  #key: StoredKey | null = null;

  /** The key, made and stored on the first call. */
  async #current(): Promise<StoredKey> {
    if (this.#key) return this.#key;
    const stored = await this.ctx.storage.get<StoredKey>(KEY_ENTRY);
    if (stored) return (this.#key = stored);
    const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const privateJwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
    const x = privateJwk.x!;
    const kid = `ds_${await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x } as JWK, "sha256")}`;
    const key: StoredKey = { kid, privateJwk, publicJwk: { kty: "OKP", crv: "Ed25519", kid, use: "sig", alg: "EdDSA", x } };
    // Only one request runs between the get and the put: this object's input gate holds the rest.
    await this.ctx.storage.put(KEY_ENTRY, key);
    return (this.#key = key);
  }

  /** The JWK Set receivers verify with (no private parts). */
  async jwks(): Promise<{ keys: PublicSigningJwk[] }> {
    return { keys: [(await this.#current()).publicJwk] };
  }

  async kid(): Promise<string> {
    return (await this.#current()).kid;
  }

  /** The private key, for subscription objects only (the gateway never asks for it). */
  async privateKey(): Promise<SigningKey> {
    const { kid, privateJwk } = await this.#current();
    return { kid, privateJwk };
  }
}
