/**
 * Standard padded base64 (RFC 4648) over the global `btoa`/`atob`, which every runtime Dovetail
 * runs in has: no Node `Buffer`. Shared by the SDK and the topic objects.
 */

/** Base64 of bytes. Encodes in chunks so large payloads do not overflow the argument list. */
export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/** Bytes of base64 text (throws on text that is not base64). */
export function base64ToBytes(b64: string): Uint8Array {
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
