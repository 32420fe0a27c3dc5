/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8 in plain JavaScript.
 * A native hardware path would cost a Node-API call per record (tens of ns), which is more than
 * the table loop for the ~100-byte records this ring is tuned for.
 *
 * @example
 * crc32c(new TextEncoder().encode("123456789")) === 0xe3069283
 */
const POLY = 0x82f63b78;
const TABLE = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  TABLE[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = TABLE[n]!;
  for (let t = 1; t < 8; t++) {
    c = TABLE[c & 0xff]! ^ (c >>> 8);
    TABLE[t * 256 + n] = c;
  }
}

/** Continue a CRC32C over `bytes[start, start+length)`. Pass the previous result as `crc` to chain. */
export function crc32cUpdate(crc: number, bytes: Uint8Array, start: number, length: number): number {
  let c = ~crc;
  let i = start;
  const end = start + length;
  const t = TABLE;
  for (; i + 8 <= end; i += 8) {
    c ^= bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    c =
      t[1792 + (c & 0xff)]! ^
      t[1536 + ((c >>> 8) & 0xff)]! ^
      t[1280 + ((c >>> 16) & 0xff)]! ^
      t[1024 + (c >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC32C of a whole byte array (or a range of it). */
export function crc32c(bytes: Uint8Array, start = 0, length = bytes.length - start): number {
  return crc32cUpdate(0, bytes, start, length);
}
