/** Byte counting without allocating, for size limits on the ingest path. */

/** UTF-8 length of a JS string (lone surrogates count as the 3-byte replacement character). */
export function utf8ByteLength(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 2 UTF-16 units, 4 UTF-8 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** Decoded length of standard, padded base64 text (validated by the protocol schema). */
export function base64ByteLength(b64: string): number {
  if (b64.length === 0) return 0;
  const padding = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return (b64.length / 4) * 3 - padding;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * UTF-8 bytes as text, or null when they are not valid UTF-8. Request bodies are decoded with
 * this, so invalid bytes are refused (`invalid_utf8`) instead of being stored as U+FFFD (issue 18).
 */
export function decodeUtf8Strict(bytes: ArrayBuffer | Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}
