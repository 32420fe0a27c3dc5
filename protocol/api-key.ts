/**
 * API keys issued by the bus: `dvt_<id>_<secret>`, where `id` is 16 hex characters (public: it
 * names the key in lists and logs) and `secret` is 32 random bytes in base64url. The bus stores
 * only the SHA-256 of the whole key (docs/decisions/010-auth-credentials.md says why a fast hash
 * is enough for 256-bit random secrets).
 *
 * @example
 * const { id, key } = generateApiKey();   // key is shown once, to the caller of the admin API
 * const stored = await hashApiKey(key);   // kept by objects/keys.ts
 * parseApiKey(key)?.id === id             // true
 */
export const API_KEY_PREFIX = "dvt_";
const API_KEY = /^dvt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** A new random key and its id. */
export function generateApiKey(): { id: string; key: string } {
  const id = hex(crypto.getRandomValues(new Uint8Array(8)));
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { id, key: `${API_KEY_PREFIX}${id}_${secret}` };
}

/** The id of a well-formed key, or `null` when `text` is not an API key. */
export function parseApiKey(text: string): { id: string } | null {
  const m = API_KEY.exec(text);
  return m ? { id: m[1]! } : null;
}

/** Hex SHA-256 of the key (WebCrypto). */
export async function hashApiKey(key: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key))));
}

/** Compare two hashes in time that does not depend on where they differ. */
export function sameHash(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
