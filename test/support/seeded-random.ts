/**
 * mulberry32: a small seeded PRNG, so fault and fuzz tests replay exactly from their seed.
 * Runtime-free: used by Node tests and by tests inside workerd.
 *
 * @example
 * const random = seededRandom(42); random(); // 0 <= x < 1, the same sequence every run
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
